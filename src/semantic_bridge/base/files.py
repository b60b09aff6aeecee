"""Writing outputs so that a crash never leaves a half-written file or folder for DVC to cache:
everything is written beside its target under a temporary name and renamed into place (an
atomic ``os.replace``) only when complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of file ``path`` (``<name>.tmp``: writers that guess the format
    from the suffix must be told it); it replaces ``path`` if the block finishes and is
    deleted if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Yield ``<out>.partial`` to build a folder in; it replaces ``out`` if the block finishes
    and is deleted if it fails: DVC never sees a half-written output."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Pretty, key-sorted JSON (metrics files diff well)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, clipped to [-1, 1]."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
