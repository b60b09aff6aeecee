import numpy as np
import pytest

from semantic_bridge.base import frames as F


@pytest.mark.parametrize("n, frames", [(1, 1), (1919, 1), (1920, 1), (1921, 2), (24000 * 4, 50)])
def test_frame_count_contract(n, frames):
    assert F.n_frames(n, 24000) == frames


def test_samples_per_frame():
    assert F.samples_per_frame(24000) == 1920
    assert F.samples_per_frame(16000) == 1280
    with pytest.raises(F.FrameError):
        F.samples_per_frame(22049)


def test_frame_end_times_and_check():
    np.testing.assert_allclose(F.frame_end_times(3), [0.08, 0.16, 0.24])
    F.check_frames("wavlm", 5, 5)
    with pytest.raises(F.FrameError, match="wavlm has 4 frames, the audio has 5"):
        F.check_frames("wavlm", 4, 5)
