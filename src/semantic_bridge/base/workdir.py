"""Resumable work: a stage keeps its unfinished work in ``<out>.work`` and resumes from it only
if that work was made by the very same job -- the same settings and the same input *content*.

The job key hashes the settings with the content fingerprints of the input datasets (the
sha256 of their Arrow files, which ``shards.finalize_dir`` records in ``state.json`` when it
writes them), so a change that keeps shapes and sizes (another teacher layer, say) discards
the old work instead of resuming it. The teacher stages and ``train`` both use this.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable

from .errors import MissingFile

log = logging.getLogger(__name__)
KEY_FILE = "job.json"


def dataset_fingerprint(split_dir: str | Path) -> str:
    """Content fingerprint of one split written by this pipeline."""
    state = Path(split_dir) / "state.json"
    if not state.is_file():
        raise MissingFile(f"{split_dir}: not a dataset written by this pipeline (no state.json)")
    return str(json.loads(state.read_text())["_fingerprint"])


def job_key(settings: Any, inputs: dict[str, str | Path], splits: Iterable[str]) -> str:
    """sha256 of ``settings`` (JSON-able) and the fingerprint of every ``inputs[name]/split``."""
    splits = list(splits)
    content = {name: {s: dataset_fingerprint(Path(root) / s) for s in splits}
               for name, root in sorted(inputs.items())}
    blob = json.dumps({"settings": settings, "inputs": content}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def open_work_dir(work: str | Path, key: str) -> bool:
    """Make ``work`` the work directory of job ``key``. Work made by another job (other
    settings or inputs) is discarded; files a killed run left half-written (``*.tmp``) are
    removed. Returns whether earlier work of this job was kept."""
    work = Path(work)
    stamp = work / KEY_FILE
    kept = work.exists() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key
    if work.exists() and not kept:
        log.info("discarding %s: made for other inputs or settings", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"key": key}))
    for stale in work.rglob("*.tmp"):
        if stale.is_file():
            stale.unlink()
    return kept
