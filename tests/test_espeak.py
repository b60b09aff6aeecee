"""espeak-ng through ctypes: real speech, word timings from the synthesiser."""

from __future__ import annotations

import numpy as np

from semantic_bridge.corpus.espeak import SynthJob, synthesize_many
from semantic_bridge.corpus.sentences import generate_sentences
from semantic_bridge.corpus.sources import SyntheticSpeaker


def synthesize(text, voice, pitch, rate):
    """One utterance, in a fresh process (as the corpus makes every utterance)."""
    return next(synthesize_many([SynthJob(text, voice, pitch, rate)], workers=1))


def test_synthesis_returns_audio_and_ordered_word_times():
    text = "The quiet river carried seven small boats past the old mill."
    s = synthesize(text, "en-us+m3", 50, 170)
    assert s.sample_rate == 22050
    seconds = len(s.audio) / s.sample_rate
    assert 1.5 < seconds < 6.0
    assert np.abs(s.audio).max() > 0.05
    assert [w.word for w in s.words] == text.rstrip(".").split()
    for a, b in zip(s.words, s.words[1:]):
        assert a.start <= a.end <= b.start + 1e-3
    assert s.words[-1].end <= seconds + 1e-3
    # speech lies inside the word spans: little energy outside them
    inside = np.zeros(len(s.audio), bool)
    for w in s.words:
        inside[int(w.start * s.sample_rate) : int(w.end * s.sample_rate)] = True
    energy = s.audio.astype(np.float64) ** 2
    assert energy[inside].sum() > 0.95 * energy.sum()


def test_voices_pitch_and_rate_change_the_audio():
    text = "Please open the window."
    base = synthesize(text, "en-us+m3", 50, 170)
    other_voice = synthesize(text, "en+f2", 50, 170)
    faster = synthesize(text, "en-us+m3", 50, 195)
    assert len(faster.audio) < len(base.audio)
    n = min(len(base.audio), len(other_voice.audio))
    assert not np.allclose(base.audio[:n], other_voice.audio[:n])
    again = synthesize(text, "en-us+m3", 50, 170)
    np.testing.assert_array_equal(base.audio, again.audio)  # deterministic


def test_generated_sentences_are_distinct_and_seeded():
    a = generate_sentences(600, seed=1)
    assert len(set(a)) == 600
    assert a == generate_sentences(600, seed=1)
    assert a != generate_sentences(600, seed=2)
    assert all(s[0].isupper() and s[-1] in ".?" for s in a)


def test_speaker_gender_from_variant():
    assert SyntheticSpeaker("a", "en-us+f4", 50, 170).gender == "female"
    assert SyntheticSpeaker("a", "en+belinda", 50, 170).gender == "female"
    assert SyntheticSpeaker("a", "en+m2", 50, 170).gender == "male"
    assert SyntheticSpeaker("a", "en+klatt2", 50, 170).gender is None
    assert SyntheticSpeaker("a", "en", 50, 170).gender is None
