"""Offline speech synthesis with espeak-ng (the library shipped by ``espeakng-loader``).

The C API is driven through ctypes in synchronous mode: the library hands back PCM
chunks and events, among them one WORD event per word with its start time. Those are
the synthesiser's own word timings, kept as ground truth for measuring aligners.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing as mp
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

# espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE, espeak_PARAMETER values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_WORDGAP = 7  # pause between words, in units of 10 ms
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset of the word
        ("length", ctypes.c_int),  # word length in characters
        ("audio_position", ctypes.c_int),  # ms from the start of this utterance
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float


@dataclass
class Synthesis:
    """``audio[N]`` float32 in [-1, 1] at ``sample_rate``, with the synthesiser's word times."""

    audio: np.ndarray
    sample_rate: int
    words: list[Word]


class EspeakError(RuntimeError):
    pass


class Espeak:
    """One espeak-ng engine. The library keeps global state: use one per process, and
    prefer ``synthesize_many``, which gives every utterance a fresh process."""

    def __init__(self) -> None:
        import espeakng_loader  # imported here: loading the library is not free

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: ctypes does not
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.audio_position))
            i += 1
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: str, pitch: int, rate: int, word_gap_ms: int = 0) -> Synthesis:
        """Speak ``text`` with ``voice`` (e.g. ``"en-us+f4"``), ``pitch`` 0..99, ``rate`` wpm and
        ``word_gap_ms`` of pause between words (rounded to 10 ms)."""
        self._chunks, self._events = [], []
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"unknown espeak-ng voice {voice!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_WORDGAP, int(round(word_gap_ms / 10)), 0)
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        err = self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0 or self._lib.espeak_Synchronize() != 0:
            raise EspeakError(f"espeak_Synth failed ({err}) for {text[:40]!r}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        events = list(self._events)
        audio = pcm.astype(np.float32) / 32768.0
        return Synthesis(audio, self.sample_rate, _word_times(text, events, audio, self.sample_rate))


def _word_times(
    text: str, events: list[tuple[int, int, int, int]], audio: np.ndarray, sample_rate: int
) -> list[Word]:
    """One span per whitespace-separated word of ``text``.

    espeak reports WORD events with start times only, and sometimes one event for two
    short words ("There are"). Each event starts a group: the word it points at plus the
    following words that got no event. A group ends at its last voiced 5 ms before the
    next group starts (pauses belong to no word); its words split the span in proportion
    to their character counts.
    """
    total = len(audio) / sample_rate
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    if not tokens:
        return []
    hop = max(1, int(0.005 * sample_rate))
    n_hops = len(audio) // hop
    frames = audio[: n_hops * hop].reshape(n_hops, hop) if n_hops else np.zeros((0, hop))
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    voiced = energy > max(1e-4, 0.02 * (energy.max() if len(energy) else 0.0))
    # event -> index of the token holding its (1-based) character position
    starts: dict[int, float] = {}
    for kind, pos, _length, ms in events:
        if kind != _EVENT_WORD:
            continue
        idx = max((i for i, (off, _) in enumerate(tokens) if off <= pos - 1), default=0)
        starts.setdefault(idx, ms / 1000.0)
    if 0 not in starts:
        starts[0] = min(starts.values(), default=0.0)
    heads = sorted(starts)
    words: list[Word] = []
    for g, head in enumerate(heads):
        members = range(head, heads[g + 1] if g + 1 < len(heads) else len(tokens))
        start = starts[head]
        limit = starts[heads[g + 1]] if g + 1 < len(heads) else total
        lo, hi = int(start / 0.005), min(int(limit / 0.005), len(voiced))
        active = np.flatnonzero(voiced[lo:hi])
        end = min(max((lo + active[-1] + 1) * 0.005 if len(active) else limit, start), total)
        chars = [len(tokens[i][1]) for i in members]
        edges = start + (end - start) * np.concatenate([[0], np.cumsum(chars)]) / sum(chars)
        for k, i in enumerate(members):
            word = tokens[i][1].strip(".,;:!?\"'()")
            words.append(Word(word, round(float(edges[k]), 4), round(float(edges[k + 1]), 4)))
    return [w for w in words if w.word]


def variant_gender(voice: str) -> Optional[str]:
    """'male' / 'female' from the ``gender`` line of the voice's variant file (``en+f4`` ->
    ``voices/!v/f4``); None when the variant states none or does not exist."""
    import espeakng_loader

    if "+" not in voice:
        return None
    path = Path(espeakng_loader.get_data_path()) / "voices" / "!v" / voice.split("+", 1)[1]
    if not path.is_file():
        return None
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "gender" and fields[1] in ("male", "female"):
            return fields[1]
    return None


@dataclass(frozen=True)
class SynthJob:
    text: str
    voice: str  # e.g. "en-us+f4"
    pitch: int  # 0..99
    rate: int  # words per minute
    word_gap_ms: int = 0  # pause between words


def _synthesize_fresh(job: SynthJob) -> Synthesis:
    # espeak's noise sources call libc rand(): seed it from the job, not the process's
    # history. (The breathy variants f2/f3/f5 still vary from run to run: the default
    # voice list leaves them out.)
    ctypes.CDLL(None).srand(zlib.crc32(f"{job.text}|{job.voice}|{job.pitch}|{job.rate}".encode()))
    return Espeak().synthesize(job.text, job.voice, job.pitch, job.rate, job.word_gap_ms)


def synthesize_many(jobs: Iterable[SynthJob], workers: int = 2, chunk: int = 64) -> Iterator[Synthesis]:
    """Synthesise ``jobs`` in order, each in a freshly forked process.

    Why: espeak-ng keeps internal state from one utterance to the next (the same text
    twice in one engine gives different samples) and some voices use libc ``rand()``, so
    a corpus made in one engine would depend on the order of synthesis. A fresh process
    per utterance, with ``rand`` seeded from the job, makes every utterance a pure
    function of (text, voice, pitch, rate). Costs ~15 ms per utterance;
    at most ``chunk`` results are held at once.
    """
    ctx = mp.get_context("fork")
    with ctx.Pool(max(1, workers), maxtasksperchild=1) as pool:
        it = iter(jobs)
        while batch := list(itertools.islice(it, chunk)):
            yield from pool.imap(_synthesize_fresh, batch)
