"""Offline speech synthesis with espeak-ng (the library shipped by ``espeakng-loader``).

The C API is driven through ctypes in synchronous mode: the library hands back PCM
chunks and events, among them one WORD event per word with its start time. Those are
the synthesiser's own word timings, kept as ground truth for measuring aligners.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

# espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE, espeak_PARAMETER values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_MSG_TERMINATED = 6
_PARAM_RATE = 1
_PARAM_PITCH = 3
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
    """One espeak-ng engine (the library keeps global state: use one per process)."""

    _lock = threading.Lock()

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

    def synthesize(self, text: str, voice: str, pitch: int, rate: int) -> Synthesis:
        """Speak ``text`` with ``voice`` (e.g. ``"en-us+f3"``), ``pitch`` 0..99, ``rate`` wpm."""
        with self._lock:
            self._chunks, self._events = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"unknown espeak-ng voice {voice!r}")
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
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
    """Word spans from WORD events: start = the event's time; end = last voiced 5 ms
    before the next word starts (espeak reports starts only; pauses belong to no word)."""
    total = len(audio) / sample_rate
    starts = [(pos, length, ms / 1000.0) for kind, pos, length, ms in events if kind == _EVENT_WORD]
    chars = list(text)
    hop = max(1, int(0.005 * sample_rate))
    n_hops = len(audio) // hop
    energy = np.sqrt(np.mean(audio[: n_hops * hop].reshape(n_hops, hop) ** 2, axis=1)) if n_hops else np.zeros(0)
    voiced = energy > max(1e-4, 0.02 * (energy.max() if len(energy) else 0.0))
    words: list[Word] = []
    for i, (pos, length, start) in enumerate(starts):
        token = "".join(chars[pos - 1 : pos - 1 + length]).strip(" .,;:!?\"'()")
        if not token:
            continue
        limit = starts[i + 1][2] if i + 1 < len(starts) else total
        lo, hi = int(start / 0.005), min(int(limit / 0.005), len(voiced))
        active = np.flatnonzero(voiced[lo:hi])
        end = (lo + active[-1] + 1) * 0.005 if len(active) else limit
        words.append(Word(token, round(start, 4), round(min(max(end, start), total), 4)))
    return words


_ENGINE: Optional[Espeak] = None


def engine() -> Espeak:
    """The process's espeak-ng engine, created on first use."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE
