"""WavLM features: exact 50 -> 12.5 Hz framing, padding-independent batches, the layer cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_bridge.config import ConfigError, WavlmConfig
from semantic_bridge.teachers.layers import load_for_layer
from semantic_bridge.teachers.wavlm import WavlmExtractor, padded_length, pool
from semantic_bridge.base.frames import FrameError, n_frames

from conftest import tone, TINY_WAVLM


@pytest.fixture(scope="module")
def extractor(tiny_models):
    return WavlmExtractor(WavlmConfig(model=str(tiny_models["wavlm"]), **TINY_WAVLM), torch.device("cpu"))


@pytest.mark.parametrize("n24", [1, 1919, 1920, 1921, 24000, 24000 * 3 + 7])
def test_padding_gives_exactly_four_wavlm_frames_per_codec_frame(extractor, n24):
    t = n_frames(n24, 24000)
    length = extractor.model._get_feat_extract_output_lengths(torch.tensor(padded_length(t)))
    assert int(length) == 4 * t
    assert padded_length(t) >= int(np.ceil(n24 * 16000 / 24000))  # padding only, never a cut


def test_pool_hand_computed():
    hidden = torch.arange(8 * 2, dtype=torch.float32).reshape(8, 2)
    torch.testing.assert_close(pool(hidden, 2), torch.tensor([[3.0, 4.0], [11.0, 12.0]]))
    with pytest.raises(FrameError):
        pool(hidden[:7], 2)


def _rows(lengths):
    rng = np.random.default_rng(0)
    return [{"id": f"u{i}", "sample_rate": 24000,
             "audio": (tone(n / 24000, 24000, freq=150 + 40 * i) + 0.01 * rng.standard_normal(n)).astype(np.float32)}
            for i, n in enumerate(lengths)]


def test_batched_equals_one_by_one(extractor, tiny_models):
    rows = _rows([24000, 13000, 40000, 24000 + 5, 9000])
    batched = list(extractor.process(rows))
    single_cfg = WavlmConfig(model=str(tiny_models["wavlm"]), batch_seconds=0.01, **TINY_WAVLM)  # one per batch
    single = list(WavlmExtractor(single_cfg, torch.device("cpu")).process(rows))
    assert len(extractor._batches([len(r["audio"]) for r in rows])) < len(rows)  # really batched
    for row, b, s in zip(rows, batched, single):
        t = n_frames(len(row["audio"]), 24000)
        assert b["id"] == row["id"] and b["n_frames"] == t
        assert b["wavlm"].shape == (t, 64) and b["wavlm"].dtype == np.float16
        np.testing.assert_allclose(b["wavlm"].astype(np.float32), s["wavlm"].astype(np.float32), atol=2e-3, rtol=2e-3)


def test_layer_cut_keeps_hidden_states_identical(tiny_models):
    from transformers import AutoModel

    path = str(tiny_models["wavlm"])
    full = AutoModel.from_pretrained(path).eval()
    x = torch.randn(1, 16000)
    with torch.no_grad():
        ref = full(x, output_hidden_states=True).hidden_states
    for layer in (0, 6, 23, 24):
        cut = load_for_layer(path, layer, "teachers.wavlm.layer")
        assert len(cut.encoder.layers) == min(layer + 1, 24)
        with torch.no_grad():
            got = cut(x, output_hidden_states=True).hidden_states[layer]
        torch.testing.assert_close(got, ref[layer])


def test_config_errors(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="teachers.wavlm.layer: 25 is out of range"):
        WavlmExtractor(WavlmConfig(model=str(tiny_models["wavlm"]), layer=25, dim=64), torch.device("cpu"))
    with pytest.raises(ConfigError, match="teachers.wavlm.dim: 1024, but"):
        WavlmExtractor(WavlmConfig(model=str(tiny_models["wavlm"]), layer=6, dim=1024), torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="teachers.wavlm.model"):
        WavlmExtractor(WavlmConfig(model=str(tmp_path / "missing")), torch.device("cpu"))
