"""Audio standardisation: every bad input is a named skip, fixable inputs are fixed."""

from __future__ import annotations

import numpy as np
import pytest

from semantic_bridge.base import audio as A
from semantic_bridge.base.errors import Skip
from conftest import tone, write_wav

KW = dict(target_rate=24000, min_seconds=0.5, max_seconds=30.0, silence_dbfs=-60.0)


def test_mono_at_target_rate_is_unchanged():
    x = tone(1.0, 24000)
    out = A.standardize(x, 24000, **KW)
    assert out.fixes == [] and out.sample_rate == 24000
    np.testing.assert_array_equal(out.audio, x)


def test_stereo_is_downmixed_and_odd_rate_resampled():
    x = tone(1.0, 44100, channels=2)  # [N, 2] as soundfile returns it
    out = A.standardize(x, 44100, **KW)
    assert out.fixes == [A.DOWNMIXED, A.RESAMPLED]
    assert out.audio.ndim == 1 and out.audio.dtype == np.float32
    assert len(out.audio) == 24000
    # a 220 Hz tone stays a 220 Hz tone
    spec = np.abs(np.fft.rfft(out.audio))
    assert abs(np.argmax(spec) * 24000 / len(out.audio) - 220) < 3


@pytest.mark.parametrize(
    "audio, rate, reason",
    [
        (np.zeros(0, np.float32), 24000, A.EMPTY),
        (np.full(24000, np.nan, np.float32), 24000, A.NOT_FINITE),
        (np.r_[tone(1.0, 24000)[:-1], np.inf].astype(np.float32), 24000, A.NOT_FINITE),
        (tone(0.2, 24000), 24000, A.TOO_SHORT),
        (tone(31.0, 8000), 8000, A.TOO_LONG),
        (np.zeros(24000, np.float32), 24000, A.SILENT),
        (tone(1.0, 24000, amp=1e-4), 24000, A.SILENT),
    ],
)
def test_bad_audio_is_a_named_skip(audio, rate, reason):
    with pytest.raises(Skip) as info:
        A.standardize(audio, rate, **KW)
    assert info.value.reason == reason


def test_unreadable_files_and_bytes(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00not really a wav file")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for src in (garbage, empty, tmp_path / "missing.wav", b"\x00\x01\x02"):
        with pytest.raises(Skip) as info:
            A.read_audio(src)
        assert info.value.reason == A.UNREADABLE


def test_read_audio_returns_channels_first(tmp_path):
    path = write_wav(tmp_path / "s.wav", tone(0.5, 16000, channels=2), 16000)
    x, rate = A.read_audio(path)
    assert rate == 16000 and x.shape == (2, 8000)
