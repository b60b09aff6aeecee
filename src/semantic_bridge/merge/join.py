"""The ``merge`` stage: join corpus, alignment and teacher features into training tuples.

Every upstream stage writes its rows in corpus order (leaving out what it skipped), so
the join walks the four datasets side by side: flat memory, one pass. Each row's
per-frame arrays are checked against the frame contract (``ceil(samples / 1920)``); a
mismatch is a counted skip (``frames_<stage>``), never a silent trim. Output: one
sharded dataset per split at ``<out>/<split>``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from semantic_bridge.base import schemas, shards
from semantic_bridge.base.errors import DataError
from semantic_bridge.base.files import staged_output
from semantic_bridge.base.frames import n_frames

log = logging.getLogger(__name__)


class _Side:
    """One upstream stage's rows, consumed in corpus order."""

    def __init__(self, name: str, directory: Path, columns: list[str]) -> None:
        self.name = name
        self.rows = shards.iter_rows(directory, columns=columns)
        self.head: Optional[dict[str, Any]] = next(self.rows, None)

    def take(self, row_id: str) -> Optional[dict[str, Any]]:
        if self.head is None or self.head["id"] != row_id:
            return None  # skipped upstream
        row, self.head = self.head, next(self.rows, None)
        return row


@dataclass
class MergeResult:
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)
    llm_masked_fraction: dict[str, float] = field(default_factory=dict)

    teachers: dict[str, Any] = field(default_factory=dict)  # what made the features

    def metrics(self, scale: str) -> dict[str, Any]:
        return {
            "scale": scale,
            "rows": self.rows,
            "hours": self.hours,
            "skipped": self.skipped,
            "skipped_total": sum(sum(v.values()) for v in self.skipped.values()),
            "llm_masked_fraction": self.llm_masked_fraction,
            "teachers": self.teachers,
        }


def _join(corpus: Path, aligned: Path, wavlm: Path, llm: Path, counts: Counter, stats: Counter
          ) -> Iterator[dict[str, Any]]:
    sides = [_Side("align", aligned, ["id", "words"]), _Side("wavlm", wavlm, ["id", "wavlm"]),
             _Side("qwen", llm, ["id", "llm", "llm_mask"])]
    for row in shards.iter_rows(corpus, columns=["id", "speaker", "text", "audio", "sample_rate"]):
        parts = {side.name: side.take(row["id"]) for side in sides}
        missing = [name for name, part in parts.items() if part is None]
        if missing:
            counts[f"missing_{missing[0]}"] += 1
            continue
        frames = n_frames(len(row["audio"]), row["sample_rate"])
        lengths = {"wavlm": len(parts["wavlm"]["wavlm"]), "qwen": len(parts["qwen"]["llm"]),
                   "qwen_mask": len(parts["qwen"]["llm_mask"])}
        bad = [name for name, n in lengths.items() if n != frames]
        if bad:
            counts[f"frames_{bad[0]}"] += 1
            log.warning("skip %s: %s has %d frames, the audio has %d", row["id"], bad[0], lengths[bad[0]], frames)
            continue
        stats["seconds"] += len(row["audio"]) / row["sample_rate"]
        stats["frames"] += frames
        stats["masked"] += int(frames - np.count_nonzero(parts["qwen"]["llm_mask"]))
        yield {**row, "words": parts["align"]["words"], "n_frames": frames, "wavlm": parts["wavlm"]["wavlm"],
               "llm": parts["qwen"]["llm"], "llm_mask": parts["qwen"]["llm_mask"]}
    for side in sides:
        if side.head is not None:
            raise DataError(f"{side.name} row {side.head['id']!r} is not in the corpus, or out of corpus order")


def _dim(directory: Path, column: str) -> int:
    return int(shards.read_features(directory)[column].shape[1])


def run_merge(corpus: str | Path, aligned: str | Path, wavlm: str | Path, llm: str | Path,
              out: str | Path, max_shard_size: str) -> MergeResult:
    corpus, aligned, wavlm, llm, out = map(Path, (corpus, aligned, wavlm, llm, out))
    result = MergeResult()
    for name, root in (("speech", wavlm), ("llm", llm)):  # written by the teacher stages
        info = root / schemas.TEACHER_FILE
        result.teachers[name] = json.loads(info.read_text()) if info.is_file() else None
    with staged_output(out) as tmp:
        for split in shards.TRAINING_SPLITS:
            feats = schemas.merged(_dim(wavlm / split, "wavlm"), _dim(llm / split, "llm"))
            counts: Counter[str] = Counter()
            stats: Counter[str] = Counter()
            with shards.ShardedWriter(tmp / split, feats, max_shard_size) as writer:
                writer.write_all(_join(corpus / split, aligned / split, wavlm / split, llm / split, counts, stats))
                result.rows[split] = writer.num_rows
            result.skipped[split] = dict(sorted(counts.items()))
            result.hours[split] = round(stats["seconds"] / 3600, 4)
            result.llm_masked_fraction[split] = round(stats["masked"] / max(stats["frames"], 1), 4)
            log.info("%s: %d rows, %d skipped", split, writer.num_rows, sum(counts.values()))
        shards.write_split_index(tmp, shards.TRAINING_SPLITS)
    return result
