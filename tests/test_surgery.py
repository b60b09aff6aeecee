"""Weight surgery from a full-size kyutai Mimi (transformers format), random weights, on disk."""

from __future__ import annotations

import pytest
import torch
from transformers import MimiConfig, MimiModel

from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.codec.surgery import SurgeryError, init_from_mimi
from semantic_bridge.config import CodebooksConfig, CodecConfig

# kyutai/mimi's sizes, as README "Paper scale" sets them in params.yaml
PAPER_CODEC = CodecConfig(hidden_size=512, num_filters=64, transformer_layers=8,
                          attention_heads=8, intermediate_size=2048, codebook_dim=256,
                          decoder="seanet")


@pytest.fixture(scope="module")
def mimi_dir(tmp_path_factory):
    """MimiConfig() is kyutai/mimi's architecture (32 codebooks: 1 semantic + 31 acoustic).
    Its codebooks are zero when freshly built, so give them random sums and counts."""
    torch.manual_seed(0)
    mimi = MimiModel(MimiConfig())
    with torch.no_grad():
        for name, buf in mimi.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buf.normal_()
            elif name.endswith("codebook.cluster_usage"):
                buf.uniform_(0.5, 3.0)
    path = tmp_path_factory.mktemp("mimi") / "kyutai-mimi-random"
    mimi.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def surgery(mimi_dir):
    torch.manual_seed(1)
    codec = BridgeCodec.build(PAPER_CODEC, CodebooksConfig(), 24000)
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    report = init_from_mimi(codec, str(mimi_dir))  # loaded by path, as params name it
    return codec, report, before, MimiModel.from_pretrained(mimi_dir).eval()


def test_every_tensor_is_copied_derived_or_listed_as_new(surgery):
    codec, report, _, mimi = surgery
    ours, theirs = codec.state_dict(), mimi.state_dict()
    keys = set(ours)
    assert set(report.copied) | set(report.derived) | set(report.new) == keys
    assert not set(report.copied) & set(report.new) and not set(report.derived) & set(report.new)
    for mine, src in report.copied.items():
        assert torch.equal(ours[mine], theirs[src].reshape(ours[mine].shape)), mine
    # the only new tensors: semantic level 2 (CB1), a codebook k-means fills from data
    assert all(k.startswith("quantizer.semantic.layers.1._codebook.") for k in report.new)
    assert {k.rsplit(".", 1)[1] for k in report.new} == {"embed", "embed_avg", "cluster_size", "initted"}
    assert not bool(ours["quantizer.semantic.layers.1._codebook.initted"])
    # Mimi's acoustic codebooks 8..31 have no place here
    assert "quantizer.acoustic_residual_vector_quantizer.layers.30.codebook.embed_sum" in report.unused
    assert report.summary()["new"] == sorted(report.new)


def test_codebook_entries_follow_mimis_sum_over_usage(surgery):
    codec, report, _, mimi = surgery
    theirs = mimi.state_dict()
    sem = "quantizer.semantic_residual_vector_quantizer.layers.0.codebook"
    aco = "quantizer.acoustic_residual_vector_quantizer.layers.6.codebook"
    expected = theirs[f"{sem}.embed_sum"] / theirs[f"{sem}.cluster_usage"].clamp(min=1e-5)[:, None]
    assert torch.equal(codec.quantizer.semantic.layers[0].codebook, expected)
    expected = theirs[f"{aco}.embed_sum"] / theirs[f"{aco}.cluster_usage"].clamp(min=1e-5)[:, None]
    assert torch.equal(codec.quantizer.acoustic.layers[6].codebook, expected)
    assert all(bool(vq._codebook.initted) for vq in codec.quantizer.acoustic.layers)


def test_the_initialised_codec_encodes_like_mimi(surgery):
    """Same latent, CB0 = Mimi's semantic code, CB2..CB8 = Mimi's acoustic codes 1..7."""
    codec, _, _, mimi = surgery
    codec.eval()
    with pytest.raises(RuntimeError, match=r"level\(s\) \[1\] were never initialised"):
        codec.encode(torch.zeros(1, 1, 1920))
    # training would k-means CB1 on its first batch; any entries will do for this comparison
    codec.quantizer.semantic.layers[1]._codebook.initted.fill_(True)
    x = torch.randn(1, 1, 24000) * 0.1
    with torch.no_grad():
        latent = codec.encode_latent(x)
        torch.testing.assert_close(latent, mimi.encoder(x).latents)
        ours = codec.quantize(latent).codes
        theirs = mimi.encode(x).audio_codes
    assert torch.equal(ours[:, 0], theirs[:, 0])
    assert torch.equal(ours[:, 2:], theirs[:, 1:8])


def test_sizes_that_do_not_fit_are_a_clear_error(mimi_dir):
    tiny = BridgeCodec.build(CodecConfig(), CodebooksConfig(), 24000)
    with pytest.raises(SurgeryError, match="codec.hidden_size: 64 here, 512 in the Mimi checkpoint"):
        init_from_mimi(tiny, str(mimi_dir))


def test_an_istft_head_starts_random_and_the_rest_is_copied(mimi_dir):
    """codec.decoder: istft has no Mimi counterpart for its head: listed as new, random; the
    decoder's upsampling and transformer still come from Mimi."""
    from dataclasses import replace

    torch.manual_seed(2)
    codec = BridgeCodec.build(replace(PAPER_CODEC, decoder="istft"), CodebooksConfig(), 24000)
    report = init_from_mimi(codec, str(mimi_dir))
    head = {k for k in codec.state_dict() if k.startswith("decoder.decoder_seanet.")}
    assert head and head <= set(report.new) and not head & set(report.copied)
    assert all(report.new[k] == "random init" for k in head)
    assert any(k.startswith("decoder.decoder_transformer.") for k in report.copied)
    assert "decoder.upsample.conv.weight" in report.copied
    assert set(report.new) - head == {k for k in report.new if k.startswith("quantizer.semantic.layers.1.")}
    assert any(k.startswith("decoder.decoder_seanet.") for k in report.unused)  # Mimi's SEANet: unused
