"""The ``train`` stage: build (with weight surgery when ``codec.init_from`` is set), resume or
start, fit, measure on held-out speakers, write the outputs.

Resume lives here and only here: Lightning checkpoints go to ``<out>.work/checkpoints/last.ckpt``
every ``train.checkpoint_every`` steps. A rerun continues from there (even after ``kill -9``)
when the work directory was made by the same job -- the same training params and the same
merged data *content* (``base.workdir``); otherwise the old work is discarded. A resumed run gives
the same model as an uninterrupted one. The work directory is removed once the outputs exist.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..base.errors import ConfigError, DataError
from ..base.files import atomic_path, write_text
from ..base.workdir import job_key, open_work_dir
from ..codec.heads import DistillHeads
from ..codec.model import BridgeCodec, group_name
from ..codec.quantizer import say_kmeans_warning_once
from ..config import Params, to_dict
from .adversary import SpeakerAdversary
from .codebook_init import init_codebooks
from .data import SegmentData, speaker_list, teacher_dims, teacher_stats
from .discriminator import MultiScaleStftDiscriminator
from .heldout import heldout_metrics
from .module import BridgeModule, StepProgress

log = logging.getLogger(__name__)

# train params that change how a run is logged or fed, not the model it makes
NOT_MODEL_PARAMS = ("num_workers", "log_every", "checkpoint_every")


def segment_frames(params: Params) -> int:
    return max(1, round(params.train.segment_seconds * params.frame_rate))


def training_params(params: Params) -> dict[str, Any]:
    """The params the train stage declares in dvc.yaml (and nothing else): what the checkpoint
    embeds, so that editing another stage's params never changes ``models/codec.pt``."""
    p = to_dict(params)
    return {"scale": p["scale"], "seed": p["seed"], "data": {"sample_rate": p["data"]["sample_rate"]},
            **{k: p[k] for k in ("codec", "codebooks", "train")}}


def _precision(params: Params) -> str:
    if params.train.precision != "auto":
        return params.train.precision
    gpu = params.train.accelerator != "cpu" and torch.cuda.is_available()
    return "bf16-mixed" if gpu else "32-true"


def frames_per_step(params: Params) -> int:
    t = params.train
    return t.batch_size * segment_frames(params) * t.world_size


def build_models(params: Params, data_dir: Path):
    """Codec (with surgery when ``codec.init_from`` is set), heads, discriminator and the
    speaker adversary (None when ``train.lambdas["adv/speaker"]`` is 0)."""
    t, books = params.train, params.codebooks
    # Mimi's rule: a code is dead when its EMA usage falls below ratio x uniform usage
    threshold = books.dead_code_ratio * frames_per_step(params) / books.size
    L.seed_everything(params.seed, workers=True, verbose=False)
    codec = BridgeCodec.build(params.codec, books, params.data.sample_rate,
                              dead_code_threshold=threshold, sync=t.world_size > 1)
    surgery = None
    if params.codec.init_from:
        from ..codec.surgery import init_from_mimi

        surgery = init_from_mimi(codec, params.codec.init_from)
        log.info("weight surgery from %s: %s", params.codec.init_from, surgery.summary())
    else:
        codec.scale_output_layer(params.codec.output_init_scale)
    llm_dim, wavlm_dim = teacher_dims(str(data_dir / "train"))
    heads = DistillHeads(params.codec.hidden_size, llm_dim, wavlm_dim, n_semantic=books.semantic)
    if t.standardize_teachers:
        heads.set_teacher_stats(teacher_stats(str(data_dir / "train")))
    disc = MultiScaleStftDiscriminator(t.discriminator.n_ffts, t.discriminator.filters)
    return codec, heads, disc, surgery, build_adversary(params, data_dir)


def build_adversary(params: Params, data_dir: Path) -> SpeakerAdversary | None:
    if params.train.lambdas["adv/speaker"] == 0:
        return None
    cfg, n_levels = params.train.speaker_adversary, params.codebooks.n_levels
    bad = [lv for lv in cfg.levels if lv >= n_levels]
    if bad:
        raise ConfigError(f"train.speaker_adversary.levels: {bad} out of range 0..{n_levels - 1}")
    n_speakers = len(speaker_list(str(data_dir / "train")))
    if n_speakers < 2:
        raise DataError(f"{data_dir / 'train'}: {n_speakers} speaker(s); the speaker adversary needs "
                        'at least 2 (or set train.lambdas["adv/speaker"] to 0)')
    return SpeakerAdversary(params.codec.hidden_size, n_speakers, cfg.hidden, cfg.levels)


def _resume_point(params: Params, data_dir: Path, work: Path, rank0: bool) -> Path | None:
    """The checkpoint to resume from, if this very job left one; see the module docstring."""
    settings = training_params(params)
    settings["train"] = {k: v for k, v in settings["train"].items() if k not in NOT_MODEL_PARAMS}
    key = job_key(settings, {"merged": data_dir}, ["train", "valid"])
    if rank0:
        open_work_dir(work, key)
    ckpt = work / "checkpoints" / "last.ckpt"
    return ckpt if ckpt.is_file() else None


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


def run_train(params: Params, data: str, out: str, plots: str) -> dict[str, Any]:
    """Train; on global rank 0 write ``out`` (codec checkpoint) and the loss curves under
    ``plots``/losses, and return the metrics. Other ranks return {}."""
    from dvclive.lightning import DVCLiveLogger
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    data_dir, out_path = Path(data), Path(out)
    for split in ("train", "valid"):
        if not (data_dir / split).is_dir():
            raise DataError(f"{data_dir / split}: missing (run the merge stage first)")
    t = params.train
    # the same results from the same inputs: deterministic kernels, no uninitialised memory read
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    say_kmeans_warning_once()
    codec, heads, disc, surgery, adversary = build_models(params, data_dir)
    config = {"params": training_params(params)}
    module = BridgeModule(codec, heads, disc, t, params.codebooks, params.seed, config, adversary)

    work = Path(str(out_path) + ".work")
    rank0 = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0
    ckpt = _resume_point(params, data_dir, work, rank0)
    if rank0 and ckpt is not None:
        start = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
        log.info("resuming from %s at step %d", ckpt, start)
        _trim_live(work / "live", start)
    init = None
    if ckpt is None:  # a resumed run restores its codebooks from the checkpoint
        init = init_codebooks(codec, data_dir / "train", params.codebooks.init_frames,
                              frames_per_step(params))

    logger = DVCLiveLogger(dir=str(work / "live"), resume=ckpt is not None, save_dvc_exp=False,
                           dvcyaml=False, report=None)
    checkpoints = ModelCheckpoint(dirpath=work / "checkpoints", filename="last",
                                  every_n_train_steps=t.checkpoint_every, save_top_k=-1,
                                  enable_version_counter=False)
    strategy = DDPStrategy(find_unused_parameters=True) if t.world_size > 1 else "auto"
    trainer = L.Trainer(
        max_steps=t.steps, max_epochs=-1, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=strategy, precision=_precision(params),
        logger=logger, callbacks=[checkpoints, StepProgress(t.log_every)],
        log_every_n_steps=t.log_every, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, limit_val_batches=0, num_sanity_val_steps=0,
    )
    batches = SegmentData(str(data_dir / "train"), segment_frames(params), params.data.sample_rate,
                          t.batch_size, params.seed, t.num_workers)
    trainer.fit(module, datamodule=batches, ckpt_path=str(ckpt) if ckpt else None)
    if not trainer.is_global_zero:
        return {}

    metrics = {
        "steps": trainer.global_step,
        "bitrate_bps": codec.bitrate_bps(),
        f"bitrate_{group_name(range(codec.n_semantic))}_bps": codec.bitrate_bps(codec.n_semantic),
        "final": module.last_losses,
        "valid": heldout_metrics(codec, heads, module.mel_loss, data_dir / "valid", t.eval_utterances),
        "precision": _precision(params),
        "world_size": trainer.world_size,
        "ranks_agree": module.ranks_agree,
    }
    if surgery is not None:
        metrics["surgery"] = surgery.summary()
    if init is not None:
        metrics["codebook_init"] = init
    _write_outputs(module, trainer.global_step, out_path, work, Path(plots), config)
    write_codebook_plot(metrics, plots)
    shutil.rmtree(work, ignore_errors=True)
    return metrics


def _write_outputs(module: BridgeModule, step: int, out: Path, work: Path, plots: Path,
                   config: dict[str, Any]) -> None:
    with atomic_path(out) as tmp:
        torch.save(module.codec.checkpoint(step=step, params=config["params"],
                                           heads=module.heads.state_dict()), tmp)
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


def write_codebook_plot(metrics: dict[str, Any], plots: str | Path) -> None:
    """``<plots>/codebooks.csv``: usage, perplexity and dead codes per level (held-out)."""
    rows = ["level,usage,perplexity,dead"]
    for level, s in metrics["valid"]["codebooks"].items():
        rows.append(f"{level},{s['usage']:.6f},{s['perplexity']:.3f},{s['dead']}")
    write_text(Path(plots) / "codebooks.csv", "\n".join(rows) + "\n")
