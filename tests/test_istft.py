"""The optional iSTFT decoder head (codec.decoder: istft): shapes, bounded look-ahead, the
split of 25 Hz states into STFT frames, the output init, checkpoints and weight surgery."""

from __future__ import annotations

import math

import pytest
import torch

from semantic_bridge.codec.istft import IstftHead
from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.config import CodebooksConfig, CodecConfig, ConfigError

HOP = 1920
ISTFT = CodecConfig(decoder="istft")


@pytest.fixture(scope="module")
def codec() -> BridgeCodec:
    torch.manual_seed(0)
    model = BridgeCodec.build(ISTFT, CodebooksConfig(), 24000)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 12 * HOP) * 0.1)  # k-means init of every level
    return model.eval()


def audio(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 1, n, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_the_head_replaces_seanet_and_keeps_mimis_front(codec):
    head = codec.decoder.decoder_seanet
    assert isinstance(head, IstftHead)
    assert (head.hop, head.n_fft, head.upsample) == (240, 960, 4)  # 4 STFT frames per 25 Hz state
    assert codec.decoder.upsample is not None and codec.decoder.decoder_transformer is not None


@pytest.mark.parametrize("n", [1, HOP - 1, HOP, 7 * HOP + 333])
def test_frame_contract_and_shapes(codec, n):
    t = math.ceil(n / HOP)
    codes = codec.encode(audio(n))
    assert codes.shape == (1, 9, t)
    assert codec.decode(codes).shape == (1, 1, t * HOP)
    assert codec.decode(codes, levels=[0, 1]).shape == (1, 1, t * HOP)


@pytest.mark.parametrize("t", [0, 4])
def test_look_ahead_is_half_a_window(codec, t):
    """Samples more than n_fft / 2 (20 ms) before the end of frame t do not depend on codes
    after frame t; the centred window's last half does (the documented look-ahead)."""
    codes = codec.encode(audio(10 * HOP, seed=3))
    other = codes.clone()
    other[..., t + 1:] = codec.encode(audio(10 * HOP, seed=4))[..., t + 1:]
    a, b = codec.decode(codes), codec.decode(other)
    safe = (t + 1) * HOP - codec.decoder.decoder_seanet.n_fft // 2
    torch.testing.assert_close(a[..., :safe], b[..., :safe], rtol=0, atol=1e-5)
    assert (a[..., safe:(t + 1) * HOP] - b[..., safe:(t + 1) * HOP]).abs().max() > 1e-6


def test_state_j_reaches_only_its_own_and_later_stft_frames():
    """The 1x1 split puts state j into STFT frames 4j..4j+3 (the ConvNeXt blocks are causal):
    changing it leaves every sample before 4j * hop - n_fft / 2 unchanged."""
    torch.manual_seed(0)
    head = IstftHead(dim_in=8, channels=16, layers=2, hop=240, upsample=4).eval()
    x = torch.randn(1, 8, 6)
    y = x.clone()
    j = 3
    y[..., j] += 1.0
    with torch.no_grad():
        a, b = head(x), head(y)
    assert a.shape == (1, 1, 6 * 4 * 240)
    safe = 4 * j * 240 - head.n_fft // 2
    torch.testing.assert_close(a[..., :safe], b[..., :safe], rtol=0, atol=1e-6)
    assert (a[..., safe:] - b[..., safe:]).abs().max() > 1e-4
    with torch.no_grad():  # the spectrum itself: frames before 4j are untouched, 4j is not
        sa, sb = head.spectrum(x), head.spectrum(y)
    assert torch.equal(sa[..., : 4 * j], sb[..., : 4 * j])
    assert (sa[..., 4 * j] - sb[..., 4 * j]).abs().max() > 1e-4


def test_output_init_scale_flattens_the_log_magnitudes_only():
    torch.manual_seed(0)
    a = BridgeCodec.build(ISTFT, CodebooksConfig(), 24000)
    b = BridgeCodec.build(ISTFT, CodebooksConfig(), 24000)
    b.load_state_dict(a.state_dict())
    b.scale_output_layer(0.02)
    ha, hb = a.decoder.decoder_seanet, b.decoder.decoder_seanet
    states = torch.randn(1, a.config.hidden_size, 5)
    with torch.no_grad():
        sa, sb = ha.spectrum(states), hb.spectrum(states)
    # log|S| is linear in the last layer's magnitude rows; the phases are left as they were
    torch.testing.assert_close(sb.abs().log(), 0.02 * sa.abs().log(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.angle(sb), torch.angle(sa), rtol=0, atol=1e-4)


def test_checkpoint_round_trip_rebuilds_the_head(codec, tmp_path):
    path = tmp_path / "codec.pt"
    torch.save(codec.checkpoint(step=1), path)
    back = BridgeCodec.from_checkpoint(path)
    assert isinstance(back.decoder.decoder_seanet, IstftHead)
    codes = codec.encode(audio(3 * HOP, seed=7))
    torch.testing.assert_close(back.decode(codes), codec.decode(codes))


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="codec.decoder"):
        CodecConfig(decoder="vocoder")
    with pytest.raises(ConfigError, match="codec.istft_hop"):
        CodecConfig(decoder="istft", istft_hop=256)  # does not divide 960
    with pytest.raises(ConfigError, match="codec.istft_hop"):
        CodecConfig(decoder="istft", istft_hop=15)  # odd
    with pytest.raises(ConfigError, match="codec.istft_layers"):
        CodecConfig(decoder="istft", istft_layers=0)
