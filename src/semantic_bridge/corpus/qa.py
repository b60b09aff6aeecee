"""The embedded audio-QA set (ReasonAQA format) whose answers are knowable from the audio:
speech or not, which kind of sound, male or female voice, how many words, same voice or
not, which of two clips is longer, which is louder.

Questions are planned from metadata only; clip audio is then read one utterance at a
time from the prepared corpus (or synthesised, for non-speech sounds) and written to
the sharded clip store, so memory does not grow with the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from semantic_bridge.base.evalsets import QaItem

SOUND_KINDS = ("tone", "sweep", "noise", "clicks")
QUESTION_TYPES = (
    "speech_or_not", "sound_kind", "voice_gender", "word_count", "same_voice", "longer", "louder",
)


@dataclass(frozen=True)
class SpeechClip:
    """Metadata of a corpus utterance usable in questions."""

    id: str
    speaker: str
    seconds: float
    n_words: int
    gender: Optional[str]  # "male" / "female" / None when unknown


@dataclass(frozen=True)
class ClipSpec:
    """How to make one clip: a corpus utterance at a gain, or a synthetic sound."""

    filepath: str
    utt_id: Optional[str] = None  # speech clip
    rms_dbfs: Optional[float] = None  # None = keep the corpus level
    sound: Optional[str] = None  # one of SOUND_KINDS
    seconds: float = 0.0
    seed: int = 0


def synth_sound(kind: str, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """A non-speech sound at about -20 dBFS RMS, 10 ms fades, float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    if kind == "tone":
        f = rng.uniform(200, 1000)
        x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
    elif kind == "sweep":
        f0, f1 = rng.uniform(150, 400), rng.uniform(2000, 6000)
        k = np.log(f1 / f0) / seconds
        x = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "clicks":
        x = np.zeros(n)
        period = int(sample_rate / rng.uniform(4, 12))
        burst = np.exp(-np.arange(int(0.01 * sample_rate)) / (0.002 * sample_rate))
        for start in range(int(0.05 * sample_rate), n - len(burst), period):
            x[start : start + len(burst)] += burst * np.sign(rng.standard_normal())
    else:
        raise ValueError(f"unknown sound kind {kind!r}")
    fade = min(n // 2, int(0.01 * sample_rate))
    if fade:
        ramp = np.linspace(0, 1, fade)
        x[:fade] *= ramp
        x[n - fade :] *= ramp[::-1]
    return _set_rms(x, -20.0 + rng.uniform(-3, 3)).astype(np.float32)


def _set_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    return x * (10 ** (dbfs / 20) / max(rms, 1e-9))


def plan_questions(
    clips: list[SpeechClip], n_questions: int, seed: int, prefix: str
) -> tuple[list[QaItem], list[ClipSpec]]:
    """Plan ``n_questions`` questions round-robin over the question types that ``clips``
    support. Returns the items and the (deduplicated) clips they reference."""
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list[SpeechClip]] = {}
    for c in clips:
        by_spk.setdefault(c.speaker, []).append(c)
    gendered = [c for c in clips if c.gender]
    types = [t for t in QUESTION_TYPES if t != "voice_gender" or gendered]
    if not clips:
        raise ValueError("no speech clips to build questions from")
    specs: dict[str, ClipSpec] = {}

    def pick(pool: list[SpeechClip]) -> SpeechClip:
        return pool[int(rng.integers(len(pool)))]

    def speech(c: SpeechClip, rms: Optional[float] = None) -> str:
        path = f"{prefix}/speech/{c.id}.wav" if rms is None else f"{prefix}/speech/{c.id}_{int(-rms)}db.wav"
        specs.setdefault(path, ClipSpec(path, utt_id=c.id, rms_dbfs=rms, seconds=c.seconds))
        return path

    def sound(kind: Optional[str] = None, seconds: Optional[float] = None) -> tuple[str, str, float]:
        kind = kind or SOUND_KINDS[int(rng.integers(len(SOUND_KINDS)))]
        secs = float(seconds if seconds is not None else round(rng.uniform(1.0, 4.0), 2))
        path = f"{prefix}/sounds/{len(specs):05d}_{kind}.wav"
        specs[path] = ClipSpec(path, sound=kind, seconds=secs, seed=int(rng.integers(2**31)))
        return path, kind, secs

    items: list[QaItem] = []
    for i in range(n_questions):
        kind = types[i % len(types)]
        if kind == "speech_or_not":
            if rng.random() < 0.5:
                items.append(QaItem(speech(pick(clips)), "", "Does this clip contain human speech? Answer yes or no.", "yes", kind))
            else:
                items.append(QaItem(sound()[0], "", "Does this clip contain human speech? Answer yes or no.", "no", kind))
        elif kind == "sound_kind":
            path, sk, _ = sound()
            items.append(QaItem(path, "", "What kind of sound is this: tone, sweep, noise or clicks?", sk, kind))
        elif kind == "voice_gender":
            c = pick(gendered)
            items.append(QaItem(speech(c), "", "Is the speaking voice male or female?", str(c.gender), kind))
        elif kind == "word_count":
            c = pick(clips)
            items.append(QaItem(speech(c), "", "How many words are spoken in this clip?", str(c.n_words), kind))
        elif kind == "same_voice":
            a = pick(clips)
            same = rng.random() < 0.5 and len(by_spk[a.speaker]) > 1
            if same:
                b = pick([c for c in by_spk[a.speaker] if c.id != a.id])
            else:
                b = pick([c for c in clips if c.speaker != a.speaker] or clips)
            answer = "yes" if a.speaker == b.speaker else "no"
            items.append(QaItem(speech(a), speech(b), "Are the two clips spoken by the same voice? Answer yes or no.", answer, kind))
        elif kind == "longer":
            # two sounds whose lengths differ by at least 40 %: the answer is unambiguous
            short = round(float(rng.uniform(1.0, 2.0)), 2)
            long_ = round(short * float(rng.uniform(1.4, 2.5)), 2)
            first_longer = rng.random() < 0.5
            p1 = sound(seconds=long_ if first_longer else short)[0]
            p2 = sound(seconds=short if first_longer else long_)[0]
            items.append(QaItem(p1, p2, "Which clip is longer, the first or the second?", "first" if first_longer else "second", kind))
        elif kind == "louder":
            a, b = pick(clips), pick(clips)
            first_louder = rng.random() < 0.5
            loud, quiet = -18.0, -18.0 - float(rng.choice([12.0, 18.0, 24.0]))
            p1 = speech(a, loud if first_louder else quiet)
            p2 = speech(b, quiet if first_louder else loud)
            items.append(QaItem(p1, p2, "Which clip is louder, the first or the second?", "first" if first_louder else "second", kind))
    return items, list(specs.values())


def render_clips(
    specs: list[ClipSpec],
    get_utterance: Callable[[str], np.ndarray],
    sample_rate: int,
) -> Iterator[dict]:
    """Rows ``{filepath, audio}`` for the clip store, made one at a time."""
    for spec in specs:
        if spec.sound is not None:
            audio = synth_sound(spec.sound, spec.seconds, sample_rate, spec.seed)
        else:
            audio = np.asarray(get_utterance(spec.utt_id), dtype=np.float32)
            if spec.rms_dbfs is not None:
                audio = np.clip(_set_rms(audio, spec.rms_dbfs), -1.0, 1.0).astype(np.float32)
        yield {"filepath": spec.filepath, "audio": audio}
