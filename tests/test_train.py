"""Training: losses by hand, curricula, batches, the Lightning loop, resume after kill -9, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from semantic_bridge.config import params_from_dict
from semantic_bridge.base import shards
from semantic_bridge.base.stage import X86_PINS
from semantic_bridge.base.schemas import merged as merged_features
from semantic_bridge.train.curriculum import acoustic_dropout_probability, level_mask
from semantic_bridge.train.data import SegmentDataset, StepSampler, collate
from semantic_bridge.train.losses import (MultiScaleMelLoss, feature_matching_loss,
                                          hinge_discriminator_loss, hinge_generator_loss,
                                          masked_cosine_loss)

from conftest import REPO

HOP = 1920
D_LLM, D_WAVLM = 12, 10


# --------------------------------------------------------------------------- losses
def test_masked_cosine_loss_by_hand():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    same = masked_cosine_loss(x, x, torch.ones(1, 3, dtype=torch.bool))
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    # frame 0 opposite (1 - cos = 2), frame 1 orthogonal (1), frame 2 masked out
    y = torch.tensor([[[-1.0, 0.0], [1.0, 0.0], [-5.0, -5.0]]])
    loss = masked_cosine_loss(x, y, torch.tensor([[True, True, False]]))
    assert loss.item() == pytest.approx(1.5)
    assert masked_cosine_loss(x, y, torch.zeros(1, 3, dtype=torch.bool)).item() == 0.0


def test_gan_losses_by_hand():
    real, fake = [torch.tensor([2.0, 0.0])], [torch.tensor([-2.0, 0.5])]
    # relu(1 - real) = [0, 1] -> 0.5 ; relu(1 + fake) = [0, 1.5] -> 0.75
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(1.25)
    # relu(1 - fake) = [3, 0.5] -> 1.75
    assert hinge_generator_loss(fake).item() == pytest.approx(1.75)
    feats = [[torch.tensor([1.0, -1.0]), torch.tensor([2.0])]]
    assert feature_matching_loss(feats, feats).item() == 0.0
    other = [[torch.tensor([2.0, -1.0]), torch.tensor([2.0])]]
    # layer 1: mean |diff| 0.5 / mean |real| 1 ; layer 2: 0 -> mean 0.25
    assert feature_matching_loss(feats, other).item() == pytest.approx(0.25)


def test_multiscale_mel_loss_is_zero_for_identical_audio_and_grows_with_error():
    mel = MultiScaleMelLoss(24000, [64, 256], [8, 32])
    x = torch.randn(2, 1, 4800) * 0.1
    assert mel(x, x).item() == 0.0
    assert 0 < mel(x + 0.01 * torch.randn_like(x), x) < mel(x + 0.1 * torch.randn_like(x), x)


# --------------------------------------------------------------------------- curricula
def test_acoustic_dropout_ramps_linearly():
    assert acoustic_dropout_probability(0, 0.3, 0) == 0.3
    assert acoustic_dropout_probability(0, 0.3, 100) == 0.0
    assert acoustic_dropout_probability(50, 0.3, 100) == pytest.approx(0.15)
    assert acoustic_dropout_probability(500, 0.3, 100) == 0.3


def test_level_masks():
    g = torch.Generator().manual_seed(0)
    assert level_mask(5, 2, 7, 0.0, 0.0, g).all()
    only_semantic = level_mask(5, 2, 7, 1.0, 0.0, g)
    assert only_semantic[:, :2].all() and not only_semantic[:, 2:].any()
    q = level_mask(4000, 2, 7, 0.0, 1.0, g)
    assert q[:, :2].all()
    kept = q[:, 2:].sum(1)
    # a prefix of the acoustic levels, 0..6 of them, uniformly
    assert all(row[2:2 + k].all() and not row[2 + k:].any() for row, k in zip(q, kept))
    assert set(kept.tolist()) == set(range(7))
    half = level_mask(4000, 2, 7, 0.3, 0.0, g)
    assert (~half[:, 2:].any(1)).float().mean().item() == pytest.approx(0.3, abs=0.03)


# --------------------------------------------------------------------------- data
def write_merged(root: Path, n_train: int = 12, n_valid: int = 4, seed: int = 0,
                 teacher_seed: int = 0) -> Path:
    """A merged dataset in the stages' format: tones of 0.5 .. 2.5 s with random teachers
    (``teacher_seed`` changes the teacher features only: same shapes, same file sizes)."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(teacher_seed)
    feats = merged_features(D_WAVLM, D_LLM)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", 2)):
        rows = []
        for i in range(n):
            samples = int(rng.integers(12000, 60000))
            t = np.arange(samples) / 24000
            f0 = rng.uniform(100, 300)
            audio = (0.3 * np.sin(2 * np.pi * f0 * t) * np.sin(2 * np.pi * 2 * t)
                     + 0.01 * rng.standard_normal(samples)).astype(np.float32)
            frames = -(-samples // HOP)
            rows.append({"id": f"{split}{i}", "speaker": f"s{i % 3}", "text": "a b", "words": [],
                         "audio": audio, "sample_rate": 24000, "n_frames": frames,
                         "wavlm": teacher.standard_normal((frames, D_WAVLM)).astype(np.float16),
                         "llm": teacher.standard_normal((frames, D_LLM)).astype(np.float16),
                         "llm_mask": [j > 0 for j in range(frames)]})
        with shards.ShardedWriter(root / split, feats) as w:
            w.write_all(rows)
    shards.write_split_index(root, ["train", "valid", "test"])
    return root


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    return write_merged(tmp_path_factory.mktemp("merged") / "merged")


def test_crops_are_frame_aligned_and_padding_is_masked(merged):
    ds = SegmentDataset(str(merged / "train"), segment_frames=20, sample_rate=24000)
    full = ds.data[0]
    for key in [(0, 1), (0, 2), (1, 3)]:
        item = ds[key]
        assert item["audio"].shape == (20 * HOP,) and item["llm"].shape == (20, D_LLM)
        total = int(ds.data[key[0]]["n_frames"])
        assert item["frame_mask"].sum() == min(20, total)
        assert not item["llm_mask"][~item["frame_mask"]].any()
    # the crop starting at frame s holds audio[s*hop:] and teacher frames [s:]
    item = ds[(0, 5)]
    audio = np.asarray(full["audio"])
    start = int(np.random.default_rng(5).integers(0, max(int(full["n_frames"]) - 20, 0) + 1))
    n = int(item["frame_mask"].sum())
    np.testing.assert_array_equal(item["llm"][:n], full["llm"][start:start + n].astype(np.float32))
    clip = audio[start * HOP:(start + n) * HOP]
    np.testing.assert_array_equal(item["audio"][:len(clip)], clip)


def test_batches_depend_only_on_seed_step_and_rank():
    a = StepSampler(100, 4, seed=7)
    resumed = StepSampler(100, 4, seed=7, start_step=3)
    first = [b for _, b in zip(range(5), a)]
    assert next(iter(resumed)) == first[3]
    assert StepSampler(100, 4, seed=7, rank=1).batch(0) != first[0]
    assert StepSampler(100, 4, seed=8).batch(0) != first[0]


def test_teacher_targets_are_standardised_with_training_statistics(merged):
    """The heads predict z-scored teacher features: over the training frames the targets have
    mean 0 and std 1 per dimension (LLM frames: only those llm_mask keeps), and the statistics
    travel in the heads' state dict (checkpoints)."""
    from semantic_bridge.codec.heads import DistillHeads
    from semantic_bridge.train.data import teacher_stats

    stats = teacher_stats(str(merged / "train"))
    heads = DistillHeads(8, D_LLM, D_WAVLM)
    heads.set_teacher_stats(stats)
    data = shards.load_split(merged / "train").with_format("numpy")
    llm = np.concatenate([np.asarray(r["llm"], np.float32)[np.asarray(r["llm_mask"], bool)] for r in data])
    wavlm = np.concatenate([np.asarray(r["wavlm"], np.float32) for r in data])
    z_llm, z_wavlm = heads.targets(torch.from_numpy(llm), torch.from_numpy(wavlm))
    for z in (z_llm, z_wavlm):
        assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4)
        assert torch.allclose(z.std(0, unbiased=False), torch.ones(z.shape[1]), atol=1e-3)
    state = heads.state_dict()
    assert torch.equal(state["llm_mean"], stats["llm"][0]) and "wavlm_std" in state


# --------------------------------------------------------------------------- speaker adversary
def test_gradient_reversal_flips_the_gradient_only():
    from semantic_bridge.train.adversary import reverse_gradient

    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, -torch.arange(4.0).expand(3, 4))


def test_speaker_adversary_learns_the_speaker_and_pushes_the_group_away():
    """One side gets the classifier's own gradient, the other its reverse: after SGD steps on
    both, the classifier names the speakers of a fixed latent better, and the latent, stepped
    on its reversed gradient, is harder to name for a fixed classifier."""
    from semantic_bridge.codec.quantizer import QuantizedResult
    from semantic_bridge.train.adversary import SpeakerAdversary

    torch.manual_seed(0)
    adv = SpeakerAdversary(dim=8, n_speakers=3, hidden=16, levels=[0])
    speaker = torch.tensor([0, 1, 2, 0, 1, 2])
    base = torch.randn(3, 8)[speaker][:, :, None].repeat(1, 1, 5)  # [B, D, T]: speaker-coloured
    levels = torch.stack([base, torch.randn(6, 8, 5)], dim=1)  # level 1 is noise, not read
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[0, 3:] = False  # padding frames are not pooled
    q = QuantizedResult(codes=torch.zeros(6, 2, 5, dtype=torch.long), levels=levels,
                        commitment=torch.zeros(()))
    loss0, acc0 = adv(q, mask, speaker)
    assert 0.0 <= float(acc0) <= 1.0 and not acc0.requires_grad
    opt = torch.optim.SGD(adv.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        adv(q, mask, speaker)[0].backward()
        opt.step()
    assert adv(q, mask, speaker)[0] < 0.5 * loss0
    # the group's latent: its gradient through the reversal raises the classifier's loss
    lat = levels.clone().requires_grad_(True)
    before = adv(QuantizedResult(q.codes, lat, q.commitment), mask, speaker)[0]
    before.backward()
    assert torch.count_nonzero(lat.grad[:, 1]) == 0  # only the adversary's levels are read
    assert torch.count_nonzero(lat.grad[0, 0, :, 3:]) == 0  # nor padding frames
    stepped = (lat - 0.5 * lat.grad).detach()  # a descent step on the reversed gradient
    assert adv(QuantizedResult(q.codes, stepped, q.commitment), mask, speaker)[0] > before


def test_batches_carry_the_speaker_index_and_zero_weight_builds_no_adversary(raw_params, merged):
    from semantic_bridge.base.errors import ConfigError
    from semantic_bridge.train.data import speaker_list
    from semantic_bridge.train.run import build_adversary

    ds = SegmentDataset(str(merged / "train"), 10, 24000)
    names = speaker_list(str(merged / "train"))
    assert names == ["s0", "s1", "s2"]
    batch = collate([ds[(i, i)] for i in range(5)])
    assert batch.speaker.dtype == torch.int64
    assert [names[i] for i in batch.speaker.tolist()] == [ds.data[i]["speaker"] for i in range(5)]
    raw = yaml.safe_load(yaml.safe_dump(raw_params))
    assert raw["train"]["lambdas"]["adv/speaker"] == 0.0  # off by default
    assert build_adversary(params_from_dict(raw), merged) is None
    raw["train"]["lambdas"]["adv/speaker"] = 0.5
    assert build_adversary(params_from_dict(raw), merged).net[-1].out_features == 3
    raw["train"]["speaker_adversary"]["levels"] = [9]
    with pytest.raises(ConfigError, match="out of range 0..8"):
        build_adversary(params_from_dict(raw), merged)


# --------------------------------------------------------------------------- the loop
def tiny_train_raw(raw_params: dict, **train) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(raw_params))
    raw["train"].update(dict(steps=6, batch_size=2, segment_seconds=0.8, adversarial_start=3,
                             checkpoint_every=2, log_every=1, eval_utterances=3, accelerator="cpu"))
    raw["train"].update(train)
    return raw


def test_reconstruction_loss_falls_on_a_fixed_batch(raw_params, merged):
    from semantic_bridge.train.module import BridgeModule
    from semantic_bridge.train.run import build_models

    params = params_from_dict(tiny_train_raw(raw_params, steps=25, adversarial_start=1000,
                                             lr=3e-3))
    codec, heads, disc, _, adversary = build_models(params, merged)
    module = BridgeModule(codec, heads, disc, params.train, params.codebooks, params.seed, {}, adversary)
    ds = SegmentDataset(str(merged / "train"), 10, 24000)
    batch = collate([ds[(i, i)] for i in range(4)])
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(pl_module.last_losses["mel/loss"])

    loader = torch.utils.data.DataLoader([batch] * params.train.steps, batch_size=None)
    trainer = L.Trainer(max_steps=params.train.steps, accelerator="cpu", logger=False,
                        callbacks=[Record()], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.global_step == params.train.steps and len(losses) == params.train.steps
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


def _stage(params_path: Path, out: Path, runner: list[str] | None = None, env_extra=None):
    cmd = [*(runner or [sys.executable]), str(REPO / "stages" / "train.py"),
           "--params", str(params_path), "--data", str(out.parent / "merged"),
           "--out", str(out / "codec.pt"), "--metrics", str(out / "train.json"),
           "--plots", str(out / "plots")]
    # the stage's kernel pins, set here too: the killer wrapper imports torch before the stage does
    env = {**os.environ, **X86_PINS, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.update(env_extra or {})
    return subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True,
                          timeout=600)


KILLER = """
import os, runpy, signal, sys
from semantic_bridge.train.module import BridgeModule
def die(self, outputs, batch, batch_idx):
    if self.global_step == 5:  # the checkpoint of step 4 is on disk; step 5 is lost
        os.kill(os.getpid(), signal.SIGKILL)
BridgeModule.on_train_batch_end = die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def stage_root(tmp_path_factory, raw_params):
    root = tmp_path_factory.mktemp("train")
    write_merged(root / "merged")
    raw = tiny_train_raw(raw_params, steps=8)
    raw["train"]["lambdas"]["adv/speaker"] = 0.5  # the speaker adversary on: resume and DDP with it
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return root


@pytest.fixture(scope="module")
def clean_run(stage_root):
    out = stage_root / "clean"
    proc = _stage(stage_root / "params.yaml", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_train_stage_writes_checkpoint_metrics_and_curves(clean_run):
    from semantic_bridge.codec.model import BridgeCodec

    metrics = json.loads((clean_run / "train.json").read_text())
    assert metrics["steps"] == 8 and metrics["scale"] == "embedded"
    assert metrics["bitrate_bps"] == 1237.5 and metrics["bitrate_cb0_1_bps"] == 275.0
    for key in ("mel/loss", "adv/gen_loss", "adv/feat_loss", "vq/commitment", "distill/llm",
                "distill/wavlm", "adv/disc_loss", "adv/speaker", "adv/speaker_accuracy"):
        assert np.isfinite(metrics["final"][key]), key
    levels = metrics["valid"]["codebooks"]
    assert sorted(levels) == [f"cb{i}" for i in range(9)]
    assert all(0 < s["used"] <= 2048 and s["dead"] == 2048 - s["used"] for s in levels.values())
    curves = clean_run / "plots" / "losses"
    mel = (curves / "mel" / "loss.tsv").read_text().splitlines()
    assert mel[0].split("\t")[0] == "step"
    assert [int(line.split("\t")[0]) for line in mel[1:]] == list(range(1, 9))
    assert (curves / "adv" / "gen_loss.tsv").is_file()  # phase 2 ran (adversarial_start 3)
    assert (clean_run / "plots" / "codebooks.csv").read_text().startswith("level,usage")
    codec = BridgeCodec.from_checkpoint(clean_run / "codec.pt")
    ckpt = torch.load(clean_run / "codec.pt", weights_only=True)
    assert ckpt["step"] == 8 and ckpt["params"]["train"]["steps"] == 8 and "heads" in ckpt
    # only the params the train stage declares: another stage's knob never changes the checkpoint
    assert set(ckpt["params"]) == {"scale", "seed", "data", "codec", "codebooks", "train"}
    assert ckpt["params"]["data"] == {"sample_rate": 24000}
    assert codec.encode(torch.zeros(1, 1, HOP * 3)).shape == (1, 9, 3)
    assert not (clean_run / "codec.pt.work").exists()


def test_resume_after_kill_9_gives_the_uninterrupted_model(stage_root, clean_run):
    out = stage_root / "killed"
    killer = stage_root / "killer.py"
    killer.write_text(KILLER)
    proc = _stage(stage_root / "params.yaml", out, runner=[sys.executable, str(killer)])
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert (out / "codec.pt.work" / "checkpoints" / "last.ckpt").is_file()
    assert not (out / "codec.pt").exists() and not (out / "train.json").exists()
    proc = _stage(stage_root / "params.yaml", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stderr
    a = torch.load(clean_run / "codec.pt", weights_only=True)
    b = torch.load(out / "codec.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    ma, mb = (json.loads((d / "train.json").read_text()) for d in (clean_run, out))
    assert ma["final"] == mb["final"] and ma["valid"] == mb["valid"]
    # every step's loss is on the curve exactly once
    assert (out / "plots/losses/mel/loss.tsv").read_text() == \
        (clean_run / "plots/losses/mel/loss.tsv").read_text()


def test_changed_settings_discard_the_work_dir(stage_root, raw_params):
    out = stage_root / "changed"
    work = out / "codec.pt.work"
    (work / "checkpoints").mkdir(parents=True)
    (work / "job.json").write_text(json.dumps({"key": "from other settings"}))
    (work / "checkpoints" / "last.ckpt").write_text("not a checkpoint")
    proc = _stage(stage_root / "params.yaml", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "discarding" in proc.stderr and "resuming" not in proc.stderr


def test_an_interrupted_run_is_not_resumed_on_other_teacher_features(tmp_path, raw_params):
    """The scenario of a teacher-layer change: the merged data keeps its shapes and file sizes
    but its content differs, so the interrupted run's checkpoint must not be resumed."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_train_raw(raw_params, steps=8)))
    write_merged(tmp_path / "merged", teacher_seed=0)
    sizes = sorted(f.stat().st_size for f in (tmp_path / "merged").rglob("*.arrow"))
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    out = tmp_path / "run"
    proc = _stage(tmp_path / "params.yaml", out, runner=[sys.executable, str(killer)])
    assert proc.returncode == -9 and (out / "codec.pt.work/checkpoints/last.ckpt").is_file()

    shutil.rmtree(tmp_path / "merged")
    write_merged(tmp_path / "merged", teacher_seed=1)  # "another teacher layer"
    assert sorted(f.stat().st_size for f in (tmp_path / "merged").rglob("*.arrow")) == sizes
    proc = _stage(tmp_path / "params.yaml", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "discarding" in proc.stderr and "resuming" not in proc.stderr
    assert json.loads((out / "train.json").read_text())["steps"] == 8


def test_ddp_on_cpu_with_two_processes(stage_root, raw_params):
    params = stage_root / "ddp.yaml"
    params.write_text(yaml.safe_dump(tiny_train_raw(raw_params, steps=4, devices=2)))
    out = stage_root / "ddp"
    proc = _stage(params, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "train.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4
    assert metrics["ranks_agree"] is True  # parameters and codebook buffers identical on both
    assert np.isfinite(metrics["final"]["adv/gen_loss"])


def test_missing_data_is_one_line_error(tmp_path, raw_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_train_raw(raw_params)))
    (tmp_path / "merged").mkdir()
    proc = _stage(tmp_path / "params.yaml", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "run the merge stage first" in proc.stderr


def test_a_bf16_mixed_step_runs_both_phases(raw_params, merged):
    """The GPU precision (bf16 autocast), exercised on CPU: every loss finite in both phases."""
    from semantic_bridge.train.module import BridgeModule
    from semantic_bridge.train.run import build_models

    params = params_from_dict(tiny_train_raw(raw_params, steps=3, adversarial_start=1))
    codec, heads, disc, _, adversary = build_models(params, merged)
    module = BridgeModule(codec, heads, disc, params.train, params.codebooks, params.seed, {}, adversary)
    ds = SegmentDataset(str(merged / "train"), 10, 24000)
    loader = torch.utils.data.DataLoader([collate([ds[(i, i)] for i in range(2)])] * 3,
                                         batch_size=None)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", precision="bf16-mixed", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.global_step == 3
    assert all(np.isfinite(v) for v in module.last_losses.values()), module.last_losses
    assert "adv/gen_loss" in module.last_losses
    assert all(p.dtype == torch.float32 for p in codec.parameters())  # weights stay fp32
