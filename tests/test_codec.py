"""The codec: shapes and the frame contract, causality, split RVQ, subsets, swap, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from semantic_bridge.codec.heads import DistillHeads
from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.codec.stats import codebook_stats
from semantic_bridge.config import CodebooksConfig, CodecConfig, ConfigError, params_from_dict

HOP = 1920


@pytest.fixture(scope="module")
def codec() -> BridgeCodec:
    """The embedded-size codec (Mimi's SEANet decoder; iSTFT: test_istft.py) with codebooks initialised from one training batch."""
    torch.manual_seed(0)
    model = BridgeCodec.build(CodecConfig(decoder="seanet"), CodebooksConfig(), 24000)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 12 * HOP) * 0.1)  # k-means init of every level
    return model.eval()


def audio(n: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, n, generator=g) * 0.1


@pytest.mark.parametrize("n", [1, HOP - 1, HOP, HOP + 1, 7 * HOP + 333])
def test_frame_contract_and_shapes(codec, n):
    x = audio(n)
    t = math.ceil(n / HOP)
    latent = codec.encode_latent(x)
    assert latent.shape == (1, 64, t)
    codes = codec.encode(x)
    assert codes.shape == (1, 9, t) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 2048
    assert codec.decode(codes).shape == (1, 1, t * HOP)
    assert codec.decode(codes, levels=[0, 1]).shape == (1, 1, t * HOP)


@pytest.mark.parametrize("t", [0, 3, 6])
def test_encoder_is_causal(codec, t):
    """Latent frame t does not depend on audio after the end of frame t."""
    x = audio(10 * HOP, seed=1)
    y = x.clone()
    y[..., (t + 1) * HOP:] += audio(10 * HOP - (t + 1) * HOP, seed=2)
    a, b = codec.encode_latent(x), codec.encode_latent(y)
    torch.testing.assert_close(a[..., : t + 1], b[..., : t + 1], rtol=0, atol=1e-5)
    assert (a[..., t + 1:] - b[..., t + 1:]).abs().max() > 1e-3  # later frames do see it


@pytest.mark.parametrize("t", [0, 4])
def test_decoder_is_causal(codec, t):
    """Output samples of frames <= t do not depend on codes after frame t."""
    codes = codec.encode(audio(10 * HOP, seed=3))
    other = codes.clone()
    other[..., t + 1:] = codec.encode(audio(10 * HOP, seed=4))[..., t + 1:]
    a, b = codec.decode(codes), codec.decode(other)
    torch.testing.assert_close(a[..., : (t + 1) * HOP], b[..., : (t + 1) * HOP], rtol=0, atol=1e-5)
    assert (a - b).abs().max() > 1e-4


def test_semantic_level_two_quantizes_the_residual_of_level_one(codec):
    latent = codec.encode_latent(audio(5 * HOP, seed=5))
    codes = codec.quantize(latent).codes
    sem = codec.quantizer.semantic
    x = sem.input_proj(latent).transpose(1, 2)[0]  # [T, C]
    books = [vq.codebook for vq in sem.layers]
    first = torch.cdist(x, books[0]).argmin(-1)
    residual = x - books[0][first]
    second = torch.cdist(residual, books[1]).argmin(-1)
    assert torch.equal(codes[0, 0], first) and torch.equal(codes[0, 1], second)
    # the acoustic RVQ starts from the same latent, not from the semantic residual
    aco = codec.quantizer.acoustic
    y = aco.input_proj(latent).transpose(1, 2)[0]
    assert torch.equal(codes[0, 2], torch.cdist(y, aco.layers[0].codebook).argmin(-1))


def test_per_level_latents_sum_to_the_decoder_input_and_match_code_lookup(codec):
    latent = codec.encode_latent(audio(6 * HOP, seed=6))
    q = codec.quantize(latent)
    assert q.levels.shape == (1, 9, 64, 6)
    torch.testing.assert_close(q.latent(), codec.quantizer.dequantize(q.codes), rtol=0, atol=1e-5)
    torch.testing.assert_close(q.latent([0, 1]), codec.quantizer.dequantize(q.codes, [0, 1]),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(q.levels[:, 4], codec.quantizer.dequantize(q.codes, [4]),
                               rtol=0, atol=1e-5)


def test_decoding_a_subset_drops_levels_instead_of_using_code_zero(codec):
    codes = codec.encode(audio(4 * HOP, seed=7))
    sub = codec.decode(codes, levels=[0, 1])
    torch.testing.assert_close(sub, codec.decode_latent(codec.quantizer.dequantize(codes, [0, 1])))
    zeros = codes.clone()
    zeros[:, 2:] = 0
    assert (sub - codec.decode(zeros)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="out of range"):
        codec.decode(codes, levels=[9])


def test_voice_swap_takes_content_from_a_and_the_rest_from_b_trimmed(codec):
    a = codec.encode(audio(5 * HOP, seed=8))
    b = codec.encode(audio(8 * HOP, seed=9))
    swapped = codec.swap_codes(a, b, content_levels=2)
    assert swapped.shape == (1, 9, 5)
    assert torch.equal(swapped[:, :2], a[:, :2]) and torch.equal(swapped[:, 2:], b[:, 2:, :5])
    assert torch.equal(codec.swap_codes(a, b, 1)[:, 1:], b[:, 1:, :5])
    assert codec.voice_swap(a, b, 2).shape == (1, 1, 5 * HOP)
    with pytest.raises(ValueError, match="content_levels"):
        codec.swap_codes(a, b, 0)


def test_training_forward_gives_straight_through_gradients_and_masks_levels():
    torch.manual_seed(1)
    model = BridgeCodec.build(CodecConfig(decoder="seanet"), CodebooksConfig(), 24000).train()
    heads = DistillHeads(64, 16, 12)
    x = audio(6 * HOP, seed=10, batch=2)
    out = model(x, torch.ones(2, 6, dtype=torch.bool))
    assert out.quantized.commitment.requires_grad
    # a loss on the CB0 head alone reaches the encoder through the quantizer
    heads(out.quantized).llm.pow(2).mean().backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.decoder.parameters())
    # level masks: an example with acoustic levels dropped decodes from CB0+1 only
    mask = torch.tensor([[True] * 9, [True, True] + [False] * 7])
    with torch.no_grad():
        q = model.quantize(model.encode_latent(x), torch.ones(2, 6, dtype=torch.bool))
        torch.testing.assert_close(q.latent(mask=mask)[1], q.latent([0, 1])[1])
        torch.testing.assert_close(q.latent(mask=mask)[0], q.latent()[0])


def test_codebooks_learn_only_in_training_and_padding_frames_do_not_count():
    torch.manual_seed(2)
    model = BridgeCodec.build(CodecConfig(decoder="seanet"), CodebooksConfig(), 24000)
    x = audio(6 * HOP, seed=11, batch=2)
    model.train()
    with torch.no_grad():
        model(x)  # k-means init
    usage = model.quantizer.semantic.codebook_usage().clone()
    model.eval()
    with torch.no_grad():
        model(x)
    assert torch.equal(model.quantizer.semantic.codebook_usage(), usage)
    model.train()
    frames = torch.zeros(2, 6, dtype=torch.bool)
    frames[:, :2] = True
    with torch.no_grad():
        q = model(x, frames).quantized
    assert (q.codes[:, :, 2:] == -1).all()  # padding frames get no code
    total = model.quantizer.semantic.codebook_usage().sum(-1)
    # EMA of counts: decay * old + (1 - decay) * 4 real frames
    expected = 0.99 * usage.sum(-1) + 0.01 * 4
    torch.testing.assert_close(total, expected, rtol=1e-4, atol=1e-4)


def test_checkpoint_round_trip_embeds_the_config(codec, tmp_path):
    path = tmp_path / "codec.pt"
    torch.save(codec.checkpoint(step=3), path)
    again = BridgeCodec.from_checkpoint(path)
    x = audio(3 * HOP, seed=12)
    assert torch.equal(again.encode(x), codec.encode(x))
    torch.testing.assert_close(again.decode(codec.encode(x)), codec.decode(codec.encode(x)))
    torch.save({"format": "something-else"}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="not a semantic-bridge-codec"):
        BridgeCodec.from_checkpoint(tmp_path / "bad.pt")


def test_bitrate_and_frame_rate_come_from_the_config():
    p = params_from_dict({})
    assert p.frame_rate == 12.5 and p.codec.frame_size == 1920  # derived from the strides
    assert p.codebooks.bitrate_bps(p.frame_rate) == 1237.5
    assert p.codebooks.bitrate_bps(p.frame_rate, p.codebooks.semantic) == 275.0
    codec = BridgeCodec.build(p.codec, p.codebooks, 24000)
    assert codec.frame_rate == 12.5 and codec.bitrate_bps(2) == 275.0
    with pytest.raises(ConfigError, match="codec.upsampling_ratios.*needs 1920"):
        BridgeCodec.build(CodecConfig(upsampling_ratios=[8, 6, 5, 2]), CodebooksConfig(), 24000)
    with pytest.raises(ConfigError, match="codec.upsampling_ratios"):  # found when params load
        params_from_dict({"codec": {"upsampling_ratios": [8, 6, 5, 2]}})
    with pytest.raises(ConfigError, match="data.sample_rate"):
        params_from_dict({"data": {"sample_rate": 22050}})
    with pytest.raises(ConfigError, match="codebooks.size"):
        params_from_dict({"codebooks": {"size": 1000}})


def test_codebook_stats_by_hand():
    s = codebook_stats([0, 0, 1, 1, -1], size=4)
    assert s == {"usage": 0.5, "used": 2, "dead": 2, "perplexity": pytest.approx(2.0)}
    assert codebook_stats([3] * 10, size=4)["perplexity"] == pytest.approx(1.0)
    assert codebook_stats(list(range(8)), size=8)["perplexity"] == pytest.approx(8.0)
    with pytest.raises(ValueError, match=">= codebook size"):
        codebook_stats([4], size=4)


def test_output_init_scale_starts_the_decoder_at_speech_level():
    torch.manual_seed(0)
    a = BridgeCodec.build(CodecConfig(decoder="seanet"), CodebooksConfig(), 24000)
    b = BridgeCodec.build(CodecConfig(decoder="seanet"), CodebooksConfig(), 24000)
    b.load_state_dict(a.state_dict())
    b.scale_output_layer(0.02)
    latent = torch.randn(1, a.config.hidden_size, 10)
    with torch.no_grad():
        ya, yb = a.decoder.decoder_seanet(latent), b.decoder.decoder_seanet(latent)
    # the last convolution is linear: the SEANet decoder's whole output scales with it
    torch.testing.assert_close(yb, 0.02 * ya, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="codec.output_init_scale"):
        CodecConfig(output_init_scale=0.0)
