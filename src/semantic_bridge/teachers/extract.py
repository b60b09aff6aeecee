"""The engine the teacher stages share: sharded, resumable, data-parallel extraction.

Each input split is cut into *units*: contiguous row ranges whose output fills about
``max_shard_size``. A unit becomes exactly one output shard, so

* **memory is flat**: rows stream through in windows (``window`` rows at a time, sorted
  by length inside the window for padding-efficient batches, written back in input
  order); nothing grows with the corpus;
* **resume is free**: a unit is written to ``<unit>.arrow.tmp`` and renamed when complete,
  so after a crash (even ``kill -9``) the work directory holds whole units only, and a
  re-run skips them; a work directory made for other inputs or settings is discarded;
* **data parallel is plain torchrun**: rank ``r`` of ``K`` takes units ``r, r+K, ...``
  (``torchrun --nproc_per_node K``; one GPU per rank); rank 0 assembles the units in plan
  order after a barrier, so the output is the same for any ``K``.

The output appears at ``out/<split>`` (``save_to_disk`` layout) only when every unit is
done; the work directory ``<out>.work`` is removed then. Rows keep the input order
(skipped rows are left out and counted), so ``merge`` joins stages by walking them
side by side.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Union

import datasets
import torch
from datasets.utils.py_utils import convert_file_size_to_int

from semantic_bridge.base import schemas as schemas
from semantic_bridge.base import shards
from semantic_bridge.base.device import default_device
from semantic_bridge.base.errors import MissingFile, Skip
from semantic_bridge.base.files import write_json
from semantic_bridge.base.progress import Progress
from semantic_bridge.base.workdir import job_key, open_work_dir

log = logging.getLogger(__name__)

WINDOW = 256  # rows read ahead and length-sorted for batching


class Extractor(Protocol):
    """What a teacher stage plugs into ``run_extraction``."""

    name: str  # the stage, for progress lines
    features: datasets.Features  # of the output rows
    input_columns: list[str]
    size_column: str  # a cheap input column that ``row_bytes`` turns into output bytes

    def identity(self) -> dict[str, Any]:
        """Everything that changes the output (model, layer, ...): a changed identity
        discards unfinished work instead of resuming it."""

    def row_bytes(self, size: Any) -> int:
        """Approximate output bytes of a row whose ``size_column`` is ``size``."""

    def process(self, rows: list[dict[str, Any]]) -> Iterator[Union[dict[str, Any], Skip]]:
        """One output row or ``Skip`` (with the row's ``id``) per input row, in input order."""


@dataclass(frozen=True)
class Unit:
    split: str
    index: int
    start: int
    stop: int


@dataclass
class ExtractionResult:
    rows: dict[str, int] = field(default_factory=dict)  # per split
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # per split, per reason
    units: int = 0
    resumed_units: int = 0  # found finished in the work directory


# --------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Dist":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def device(self) -> torch.device:
        return default_device(self.local_rank)

    def init(self) -> None:
        if self.world_size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if torch.cuda.is_available():
                torch.cuda.set_device(self.local_rank)
            # ranks meet only at the start and the end; a long shard must not time out
            torch.distributed.init_process_group(backend, timeout=timedelta(hours=24))

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def autocast(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU (where bf16 is slow and the models tiny)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


# --------------------------------------------------------------------------- planning
def plan_units(input_dir: Path, split: str, extractor: Extractor, max_bytes: int) -> list[Unit]:
    """Cut a split into contiguous units of about ``max_bytes`` output each."""
    units: list[Unit] = []
    start = row = 0
    size = 0
    for batch in shards.iter_batches(input_dir, columns=[extractor.size_column]):
        for value in batch.column(0).to_pylist():
            size += extractor.row_bytes(value)
            row += 1
            if size >= max_bytes:
                units.append(Unit(split, len(units), start, row))
                start, size = row, 0
    if row > start:
        units.append(Unit(split, len(units), start, row))
    return units


# --------------------------------------------------------------------------- running
def _unit_paths(work: Path, unit: Unit) -> tuple[Path, Path]:
    base = work / unit.split / f"unit-{unit.index:05d}"
    return base.with_suffix(".arrow"), base.with_suffix(".json")


def _run_unit(extractor: Extractor, input_dir: Path, unit: Unit, work: Path, progress: Progress) -> None:
    arrow, stats_path = _unit_paths(work, unit)
    counts: Counter[str] = Counter()
    n_rows = 0

    def outputs() -> Iterator[dict[str, Any]]:
        nonlocal n_rows
        rows = shards.iter_rows(input_dir, unit.start, unit.stop, extractor.input_columns)
        for window in shards.windows(rows, WINDOW):
            for out in extractor.process(window):
                if isinstance(out, Skip):
                    counts[out.reason] += 1
                    log.warning("skip %s: %s", out.id, out)
                else:
                    n_rows += 1
                    yield out
            progress.update(len(window))

    arrow.parent.mkdir(parents=True, exist_ok=True)
    shards.write_shard(arrow, extractor.features, outputs())  # atomic: .tmp, then rename
    # a unit is finished once its stats exist too; a kill between the two redoes it
    write_json(stats_path, {"rows": n_rows, "skipped": dict(counts)})


def _unit_done(work: Path, unit: Unit) -> bool:
    arrow, stats = _unit_paths(work, unit)
    return arrow.is_file() and stats.is_file()


def run_extraction(
    extractor: Extractor,
    input_root: str | Path,
    out_root: str | Path,
    splits: list[str],
    max_shard_size: str | int,
    dist: Optional[Dist] = None,
) -> Optional[ExtractionResult]:
    """Extract every split of ``input_root`` into ``out_root``; see the module docstring.

    Returns the result on rank 0 and None on other ranks.
    """
    dist = dist or Dist.from_env()
    input_root, out_root = Path(input_root), Path(out_root)
    work = out_root.with_name(out_root.name + ".work")
    max_bytes = convert_file_size_to_int(max_shard_size)
    for split in splits:
        if not (input_root / split / "state.json").is_file():
            raise MissingFile(f"{input_root / split}: input split not found")
    settings = {"extractor": extractor.identity(), "max_bytes": max_bytes,
                "features": extractor.features.to_dict()}
    key = job_key(settings, {"input": input_root}, splits)
    if dist.rank == 0:
        open_work_dir(work, key)
    dist.barrier()

    plan = [u for split in splits for u in plan_units(input_root / split, split, extractor, max_bytes)]
    mine = plan[dist.rank :: dist.world_size]
    todo = [u for u in mine if not _unit_done(work, u)]
    resumed = len(mine) - len(todo)
    progress = Progress(f"{extractor.name} rank {dist.rank}",
                        sum(u.stop - u.start for u in todo), "utt")
    for unit in todo:
        log.info("rank %d: %s unit %d/%d (rows %d..%d)", dist.rank, unit.split, unit.index + 1,
                 sum(u.split == unit.split for u in plan), unit.start, unit.stop)
        _run_unit(extractor, input_root / unit.split, unit, work, progress)
    progress.close()
    if resumed:
        log.info("rank %d: resumed, %d finished units kept", dist.rank, resumed)
    resumed_all = torch.tensor([resumed], device=dist.device)  # NCCL reduces GPU tensors only
    if dist.world_size > 1:
        torch.distributed.all_reduce(resumed_all)
    dist.barrier()
    if dist.rank != 0:
        dist.barrier()
        return None
    result = _assemble(extractor, plan, splits, work, out_root)
    result.resumed_units = int(resumed_all.item())
    dist.barrier()
    return result


def _assemble(extractor: Extractor, plan: list[Unit], splits: list[str], work: Path, out_root: Path
              ) -> ExtractionResult:
    """Rank 0: move every finished unit into its split, in plan order, then publish."""
    result = ExtractionResult(units=len(plan))
    final = work / "_final"
    shutil.rmtree(final, ignore_errors=True)
    for split in splits:
        target = final / split
        target.mkdir(parents=True)
        units = [u for u in plan if u.split == split]
        files, rows, skipped = [], 0, Counter()
        for unit in units:
            arrow, stats_path = _unit_paths(work, unit)
            if not _unit_done(work, unit):
                raise RuntimeError(f"{split} unit {unit.index} is missing after all ranks finished")
            stats = json.loads(stats_path.read_text())
            rows += stats["rows"]
            skipped.update(stats["skipped"])
            moved = target / arrow.name
            os.replace(arrow, moved)
            files.append(moved)
        if not files:  # an empty split is still a loadable dataset
            files.append(target / "empty.arrow")
            shards.write_shard(files[0], extractor.features, [])
        shards.finalize_dir(target, files, extractor.features)
        result.rows[split] = rows
        result.skipped[split] = dict(sorted(skipped.items()))
    shards.write_split_index(final, splits)
    # what made these features, for the stages that read them (merge records it)
    write_json(final / schemas.TEACHER_FILE, extractor.identity())
    shutil.rmtree(out_root, ignore_errors=True)
    os.replace(final, out_root)
    shutil.rmtree(work)
    return result
