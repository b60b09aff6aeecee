"""The resynthesis quality suite (eval_quality) and codebook initialisation from many frames."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import pytest
import torch

from semantic_bridge.evaluate import quality as Q
from semantic_bridge.evaluate.metrics import si_snr

from conftest import SPEECH, tone


# --------------------------------------------------------------------------- pure metrics by hand
def test_si_snr_by_hand():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(16000)
    assert si_snr(s, 3.0 * s) > 80  # scale-invariant: a louder copy is perfect
    noise = rng.standard_normal(16000)
    noise -= noise @ s / (s @ s) * s  # orthogonal to the signal
    noise *= np.linalg.norm(s) / np.linalg.norm(noise) / np.sqrt(10)  # 10 dB below
    assert si_snr(s, s + noise) == pytest.approx(10.0, abs=0.05)


def test_f0_scores_by_hand():
    ref = np.array([0, 100, 200, 200, 0, 150.0])
    est = np.array([0, 200, 200, 0, 100, 150.0])  # one octave off, two right, voicing wrong twice
    out = Q.f0_scores(ref, est)
    assert out["voicing_error"] == pytest.approx(2 / 6)
    assert out["f0_rmse_cents"] == pytest.approx(np.sqrt(1200 ** 2 / 3))  # frames voiced in both: 1, 2, 5
    assert out["f0_corr"] == pytest.approx(np.corrcoef([100, 200, 150], [200, 200, 150])[0, 1])
    assert Q.f0_scores(np.zeros(5), np.zeros(5))["f0_rmse_cents"] is None


def test_pitch_tracker_and_mel_distance():
    f0 = Q.f0_track(tone(1.0, 16000, freq=220.0))
    assert np.median(f0[f0 > 0]) == pytest.approx(220, abs=3)
    x = tone(1.0, 24000)
    assert Q.mel_distance(x, x, 24000) == 0.0
    assert Q.mel_distance(x, x + 0.01 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32), 24000) > 0


def test_dnsmos_scores_one_window_of_the_looped_clip():
    """Short clips are looped to one 10 s window; the score stays close to speechmos's own
    (it doubles the clip and averages every 1 s hop) on real speech, long clips are only clipped."""
    from speechmos import dnsmos

    audio, rate = sf.read(SPEECH / "arctic_a0007.wav", dtype="float32")
    assert rate == Q.RATE
    clip = audio[: int(2.2 * rate)]
    looped = Q.dnsmos_input(clip)
    assert len(looped) == int(Q.DNSMOS_SECONDS * rate)
    np.testing.assert_array_equal(looped[: len(clip)], clip)
    np.testing.assert_array_equal(looped[len(clip): 2 * len(clip)], clip)
    long = np.full(int(11 * rate), 1.5, dtype=np.float32)
    kept = Q.dnsmos_input(long)
    assert len(kept) == len(long) and kept.max() == 1.0
    ours = dnsmos.run(looped, rate)["ovrl_mos"]
    theirs = dnsmos.run(clip, rate)["ovrl_mos"]
    assert 1.0 <= ours <= 5.0 and abs(ours - theirs) < 0.3, (ours, theirs)


def test_cumulative_rows_are_the_first_k_levels():
    rows = Q.cumulative_rows(9, 2)
    assert list(rows) == ["cb0", "cb0_1", "cb0_2", "cb0_3", "cb0_4", "cb0_5", "cb0_6", "cb0_7", "cb0_8",
                          "cb1", "cb2_8"]
    assert rows["cb0_2"] == [0, 1, 2] and rows["cb0_8"] == list(range(9))
    assert rows["cb1"] == [1] and rows["cb2_8"] == list(range(2, 9))


# --------------------------------------------------------------------------- the stage
@pytest.mark.slow
def test_quality_stage_rows_metrics_wavs_and_plots(prepared_tiny, factory_raw, tmp_path):
    from eval_fixtures import tiny_codec_checkpoint

    from semantic_bridge.base import shards
    from semantic_bridge.config import params_from_dict
    from semantic_bridge.models.embedded import build_tiny_mimi

    params = params_from_dict(factory_raw)
    audios = [r["audio"] for r in shards.iter_rows(prepared_tiny / "corpus" / "train", columns=["audio"])]
    codec = tiny_codec_checkpoint(tmp_path / "codec.pt", params, audios)
    cfg = params.eval.quality
    cfg.utterances, cfg.save_wavs = 2, 1
    cfg.reference_mimi = str(build_tiny_mimi(tmp_path / "mimi", 0))
    m = Q.run_quality(cfg, params.eval.wer, "campplus", "embedded", str(prepared_tiny / "corpus"), str(codec),
                      str(tmp_path / "wavs"), str(tmp_path / "plots"))
    rows = m["rows"]
    assert list(rows)[:2] == ["original", "cb0"] and {"mimi_1", "mimi_2", "mimi_8"} <= set(rows)
    assert [rows[f"cb0_{k}"]["bitrate_bps"] for k in (1, 8)] == [2 * 75.0, 9 * 75.0]  # 64 codes: 6 bits
    assert rows["mimi_8"]["bitrate_bps"] == 8 * 8 * 12.5  # the tiny Mimi has 256-entry codebooks
    assert set(rows["original"]) == {"bitrate_bps", "wer", "cer", "asr_capped", "dnsmos_ovrl"}  # intrusive ones are identities
    for name in ("cb0", "cb0_8", "mimi_2"):
        r = rows[name]
        assert 0 <= r["stoi"] <= 1 and -1 <= r["speaker_similarity"] <= 1 and r["mel_distance"] > 0
        assert 1 <= r["dnsmos_ovrl"] <= 5 and r["wer"] >= 0
    # hypotheses cut at the ASR's loop cap, counted per row (at most one per utterance)
    assert all(isinstance(r["asr_capped"], int) and 0 <= r["asr_capped"] <= 2 for r in rows.values())
    assert m["utterances"] == 2 and m["models"]["reference_mimi"]["note"] == "random weights: machinery only"
    lines = (tmp_path / "plots" / "quality.csv").read_text().splitlines()
    assert lines[0].startswith("row,bitrate_bps,wer,cer,stoi") and len(lines) == 1 + len(rows)
    assert (tmp_path / "plots" / "quality.png").stat().st_size > 1000
    assert len(list((tmp_path / "wavs").rglob("*.wav"))) == len(rows)
    json.dumps(m)


# --------------------------------------------------------------------------- codebook initialisation
def test_codebooks_are_initialised_from_many_frames_not_one_batch():
    """A 256-entry codebook initialised from 4096 frames uses far more of its entries than one
    initialised from a 150-frame batch (which must repeat its samples)."""
    from semantic_bridge.codec.model import BridgeCodec
    from semantic_bridge.codec.stats import codebook_stats
    from semantic_bridge.config import CodebooksConfig, params_from_dict

    p = params_from_dict({})
    books = CodebooksConfig(size=256, kmeans_iters=5)
    torch.manual_seed(0)
    data = torch.randn(4096, p.codec.hidden_size)
    perplexity = {}
    for n in (150, 4096):
        torch.manual_seed(1)
        codec = BridgeCodec.build(p.codec, books, 24000)
        done = codec.quantizer.init_from_data(data[:n], frames_per_step=150)
        assert done == list(range(9))
        codec.eval()
        codes = codec.quantizer(data.T[None]).codes[0]  # [K, N]
        perplexity[n] = [codebook_stats(codes[k].numpy(), 256)["perplexity"] for k in range(9)]
        sizes = codec.quantizer.semantic.layers[0]._codebook.cluster_size
        assert float(sizes.sum()) == pytest.approx(150, rel=1e-3)  # rescaled to one step's frames
    assert min(perplexity[4096]) > 1.5 * max(perplexity[150])


def test_surgery_filled_levels_are_kept_by_the_init():
    from semantic_bridge.codec.model import BridgeCodec
    from semantic_bridge.config import CodebooksConfig, params_from_dict

    p = params_from_dict({})
    codec = BridgeCodec.build(p.codec, CodebooksConfig(size=64, kmeans_iters=2), 24000)
    level0 = codec.quantizer.semantic.layers[0]._codebook
    level0.initted.fill_(True)  # as weight surgery leaves CB0
    before = level0.embed.clone()
    done = codec.quantizer.init_from_data(torch.randn(512, p.codec.hidden_size), frames_per_step=100)
    assert 0 not in done and torch.equal(level0.embed, before) and len(done) == 8


# --------------------------------------------------------------------------- the disentanglement table
def test_disentanglement_table_gathers_each_factor_per_group(tmp_path):
    from semantic_bridge.evaluate.disentanglement import COLUMNS, disentanglement_table, run_disentanglement

    quality = {"rows": {"cb0": {"wer": 0.9, "f0_corr": 0.1, "speaker_similarity": 0.2},
                        "cb0_8": {"wer": 0.3, "f0_corr": 0.8, "speaker_similarity": 0.9}}}
    eer = {"eer": {"cb0": {"mean": {"cosine": {"eer": 0.45}}}, "latent": {"mean": {"cosine": {"eer": 0.1}}}}}
    probe = {"accuracy": {"cb0": {"top1": 0.4}, "cb2_8": {"top1": 0.2}}}
    table = disentanglement_table(quality, eer, probe, ["cb0", "cb2_8", "all", "latent"])
    assert table["cb0"] == {"wer": 0.9, "probe_top1": 0.4, "f0_corr": 0.1, "speaker_eer": 0.45,
                            "speaker_similarity": 0.2}
    assert table["all"]["wer"] == 0.3  # "all" is the 9-level row of the quality suite
    assert table["latent"] == {c: (0.1 if c == "speaker_eer" else None) for c in COLUMNS}
    files = []
    for name, data in (("q", quality), ("e", eer), ("p", probe)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(data))
    m = run_disentanglement("embedded", *map(str, files), str(tmp_path / "d.png"))
    assert set(m["groups"]) == {"cb0", "cb1", "cb0_1", "cb2_8", "all", "latent"}
    assert (tmp_path / "d.png").stat().st_size > 1000
