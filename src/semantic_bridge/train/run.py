"""The ``train`` stage: build, (resume,) fit, evaluate on held-out speakers, write outputs.

Resumable: Lightning checkpoints go to ``<out>.work/checkpoints/last.ckpt`` every
``train.checkpoint_every`` steps; a rerun with the same settings and data continues from there
(even after ``kill -9``) and gives the same model as an uninterrupted run. The work directory
is discarded when settings or data differ, and removed after the outputs are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from ..codec.heads import DistillHeads
from ..codec.model import BridgeCodec
from ..codec.stats import codebook_stats
from ..config import Params, to_dict
from ..data.shards import load_split
from .data import SegmentDataset, StepSampler, collate, teacher_dims
from .discriminator import MultiScaleStftDiscriminator
from .losses import masked_cosine_loss
from .module import BridgeModule

log = logging.getLogger(__name__)


class TrainDataError(ValueError):
    """The merged dataset cannot be trained on."""


class SegmentData(L.LightningDataModule):
    """Batches start at the restored global step, so a resumed run continues the sequence."""

    def __init__(self, directory: str, params: Params):
        super().__init__()
        self.directory, self.params = directory, params

    def train_dataloader(self):
        p = self.params
        frames = segment_frames(p)
        dataset = SegmentDataset(self.directory, frames, p.data.sample_rate)
        sampler = StepSampler(len(dataset), p.train.batch_size, p.seed,
                              rank=self.trainer.global_rank, start_step=self.trainer.global_step)
        workers = p.train.num_workers
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
            # fork after torch's thread pools have started can deadlock; spawn is safe
            multiprocessing_context="spawn" if workers else None,
            persistent_workers=workers > 0)


def segment_frames(params: Params) -> int:
    return max(1, round(params.train.segment_seconds * params.codec.frame_rate))


def training_params(params: Params) -> dict[str, Any]:
    """The params the train stage declares in dvc.yaml (and nothing else): what the checkpoint
    embeds, so that editing another stage's params never changes ``models/codec.pt``."""
    p = to_dict(params)
    return {"scale": p["scale"], "seed": p["seed"], "data": {"sample_rate": p["data"]["sample_rate"]},
            **{k: p[k] for k in ("codec", "codebooks", "train")}}


def _fingerprint(params: Params, data_dir: Path) -> str:
    """Hash of everything that decides the trained model: the params the stage reads and the
    merged data files (names and sizes; DVC reruns the stage when their content changes)."""
    keep = training_params(params)
    keep["train"] = {k: v for k, v in keep["train"].items()
                     if k not in ("num_workers", "log_every", "checkpoint_every")}
    files = sorted((str(f.relative_to(data_dir)), f.stat().st_size)
                   for f in data_dir.rglob("*") if f.is_file())
    return hashlib.sha256(json.dumps([keep, files], sort_keys=True).encode()).hexdigest()


def _precision(params: Params) -> str:
    if params.train.precision != "auto":
        return params.train.precision
    gpu = params.train.accelerator != "cpu" and torch.cuda.is_available()
    return "bf16-mixed" if gpu else "32-true"


def _trim_live(live: Path, start_step: int) -> None:
    """Drop curve points logged after the checkpoint we resume from (they are logged again).

    Points are logged at step = updates done, so the checkpoint of step k keeps 1..k."""
    for tsv in (live / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        header, rows = lines[0], lines[1:]
        col = header.split("\t").index("step")
        kept = [r for r in rows if int(r.split("\t")[col]) <= start_step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


def build_models(params: Params, data_dir: Path):
    """Codec (with surgery when ``codec.init_from`` is set), heads and discriminator."""
    t, books = params.train, params.codebooks
    frames_per_step = t.batch_size * segment_frames(params) * t.world_size
    # Mimi's rule: a code is dead when its EMA usage falls below ratio x uniform usage
    threshold = books.dead_code_ratio * frames_per_step / books.size
    L.seed_everything(params.seed, workers=True, verbose=False)
    codec = BridgeCodec.build(params.codec, books, params.data.sample_rate,
                              dead_code_threshold=threshold, sync=t.world_size > 1)
    surgery = None
    if params.codec.init_from:
        from ..codec.surgery import init_from_mimi

        surgery = init_from_mimi(codec, params.codec.init_from)
        log.info("weight surgery from %s: %s", params.codec.init_from, surgery.summary())
    llm_dim, wavlm_dim = teacher_dims(str(data_dir / "train"))
    heads = DistillHeads(params.codec.hidden_size, llm_dim, wavlm_dim, n_semantic=books.semantic)
    disc = MultiScaleStftDiscriminator(t.discriminator.n_ffts, t.discriminator.filters)
    return codec, heads, disc, surgery


@torch.no_grad()
def evaluate(module: BridgeModule, valid_dir: Path, params: Params) -> dict[str, Any]:
    """Held-out numbers from the trained model: codebook usage per level, reconstruction
    (all levels and CB0+1 only) and distillation losses, over ``train.eval_utterances``."""
    codec, heads = module.codec.eval(), module.heads.eval()
    device = next(codec.parameters()).device
    data = load_split(str(valid_dir)).with_format("numpy")
    n = min(len(data), params.train.eval_utterances)
    if n == 0:
        raise TrainDataError(f"{valid_dir}: no validation rows")
    semantic = list(range(codec.n_semantic))
    codes_per_level = [[] for _ in range(codec.n_levels)]
    sums = {"mel/loss": 0.0, "mel/loss_cb01": 0.0, "distill/llm": 0.0, "distill/wavlm": 0.0}
    for i in range(n):
        row = data[i]
        audio = torch.from_numpy(np.asarray(row["audio"], np.float32))[None, None].to(device)
        latent = codec.encode_latent(audio)
        q = codec.quantize(latent)
        for level in range(codec.n_levels):
            codes_per_level[level].append(q.codes[0, level].cpu().numpy())
        target = torch.nn.functional.pad(audio, (0, latent.shape[-1] * codec.hop - audio.shape[-1]))
        sums["mel/loss"] += float(module.mel_loss(codec.decode_latent(q.latent()), target))
        sums["mel/loss_cb01"] += float(module.mel_loss(codec.decode_latent(q.latent(semantic)), target))
        h = heads(q)
        frames = torch.ones(1, latent.shape[-1], dtype=torch.bool, device=device)
        llm_mask = torch.from_numpy(np.asarray(row["llm_mask"], bool))[None].to(device)
        sums["distill/llm"] += float(masked_cosine_loss(
            h.llm, torch.from_numpy(row["llm"].astype(np.float32))[None].to(device), llm_mask))
        sums["distill/wavlm"] += float(masked_cosine_loss(
            h.wavlm, torch.from_numpy(row["wavlm"].astype(np.float32))[None].to(device), frames))
    size = params.codebooks.size
    levels = {f"cb{k}": codebook_stats(np.concatenate(c), size) for k, c in enumerate(codes_per_level)}
    return {"utterances": n, "losses": {k: v / n for k, v in sums.items()}, "codebooks": levels}


def run_train(params: Params, data: str, out: str, plots: str) -> dict[str, Any]:
    """Train; on global rank 0 write ``out`` (codec checkpoint) and the loss curves under
    ``plots``/losses, and return the metrics. Other ranks return {}."""
    from dvclive.lightning import DVCLiveLogger
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    data_dir, out_path = Path(data), Path(out)
    for split in ("train", "valid"):
        if not (data_dir / split).is_dir():
            raise TrainDataError(f"{data_dir / split}: missing (run the merge stage first)")
    t = params.train
    codec, heads, disc, surgery = build_models(params, data_dir)
    config = {"params": training_params(params), "codec": codec.settings}
    module = BridgeModule(codec, heads, disc, t, params.codebooks, params.seed, config)

    work = Path(str(out_path) + ".work")
    fingerprint = _fingerprint(params, data_dir)
    stamp = work / "fingerprint"
    rank0 = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0
    if rank0 and work.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
        log.info("discarding %s: made with other settings or data", work)
        shutil.rmtree(work)
    ckpt = work / "checkpoints" / "last.ckpt"
    resume = ckpt.is_file()
    if rank0:
        work.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
        if resume:
            start = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
            log.info("resuming from %s at step %d", ckpt, start)
            _trim_live(work / "live", start)

    logger = DVCLiveLogger(dir=str(work / "live"), resume=resume, save_dvc_exp=False,
                           dvcyaml=False, report=None)
    checkpoints = ModelCheckpoint(dirpath=work / "checkpoints", filename="last",
                                  every_n_train_steps=t.checkpoint_every, save_top_k=-1,
                                  enable_version_counter=False)
    strategy = DDPStrategy(find_unused_parameters=True) if t.world_size > 1 else "auto"
    trainer = L.Trainer(
        max_steps=t.steps, max_epochs=-1, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=strategy, precision=_precision(params),
        logger=logger, callbacks=[checkpoints], log_every_n_steps=t.log_every,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        limit_val_batches=0, num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=SegmentData(str(data_dir / "train"), params),
                ckpt_path=str(ckpt) if resume else None)
    if not trainer.is_global_zero:
        return {}

    metrics = {
        "steps": trainer.global_step,
        "bitrate_bps": params.codebooks.bitrate_bps(params.codec.frame_rate),
        "bitrate_cb01_bps": params.codebooks.bitrate_bps(params.codec.frame_rate,
                                                         params.codebooks.semantic),
        "final": module.last_losses,
        "valid": evaluate(module, data_dir / "valid", params),
        "precision": _precision(params),
        "world_size": trainer.world_size,
        "ranks_agree": module.ranks_agree,
    }
    if surgery is not None:
        metrics["surgery"] = surgery.summary()
    _write_outputs(module, trainer.global_step, out_path, work, Path(plots), config)
    shutil.rmtree(work, ignore_errors=True)
    return metrics


def _write_outputs(module: BridgeModule, step: int, out: Path, work: Path, plots: Path,
                   config: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    state = module.codec.checkpoint(step=step, params=config["params"],
                                    heads=module.heads.state_dict())
    torch.save(state, tmp)
    os.replace(tmp, out)
    curves = plots / "losses"
    if curves.exists():
        shutil.rmtree(curves)
    source = work / "live" / "plots" / "metrics"
    for tsv in sorted(source.rglob("*.tsv")):
        rel = tsv.relative_to(source)
        if rel.stem in ("epoch", "step"):  # Lightning bookkeeping, not losses
            continue
        (curves / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tsv, curves / rel)


def write_codebook_plot(metrics: dict[str, Any], plots: str) -> None:
    """``<plots>/codebooks.csv``: usage, perplexity and dead codes per level (held-out)."""
    path = Path(plots) / "codebooks.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["level,usage,perplexity,dead"]
    for level, s in metrics["valid"]["codebooks"].items():
        rows.append(f"{level},{s['usage']:.6f},{s['perplexity']:.3f},{s['dead']}")
    path.write_text("\n".join(rows) + "\n")
