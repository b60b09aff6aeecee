"""What the evaluation runners share: the trained codec and its record, resynthesis as numpy,
reading test rows, and the header every metrics file starts with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from ..base import shards
from ..base.device import default_device
from ..base.errors import DataError, MissingFile
from ..codec.model import BridgeCodec


@dataclass
class LoadedCodec:
    """The trained codec and where it came from (recorded in every metrics file)."""

    codec: BridgeCodec
    path: str
    step: int
    init_from: Optional[str]

    def info(self) -> dict[str, Any]:
        return {"checkpoint": self.path, "step": self.step, "init_from": self.init_from,
                "levels": self.codec.n_levels, "semantic_levels": self.codec.n_semantic,
                "bitrate_bps": self.codec.bitrate_bps()}


def load_codec(path: str | Path, dev: Optional[torch.device] = None) -> LoadedCodec:
    """``BridgeCodec.from_checkpoint`` plus the checkpoint's own record (config embedded)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{path}: codec checkpoint not found (run the train stage first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    codec = BridgeCodec.from_checkpoint(ckpt).to(dev or default_device())
    return LoadedCodec(codec, str(path), int(ckpt.get("step", 0)), ckpt["codec"].get("init_from"))


def as_batch(audio: np.ndarray, dev: torch.device) -> torch.Tensor:
    """``audio[N]`` -> ``[1, 1, N]`` float32 on ``dev``."""
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None].to(dev)


def resynthesize(codec: BridgeCodec, audio: np.ndarray,
                 subsets: Sequence[Optional[Sequence[int]]]) -> list[np.ndarray]:
    """``BridgeCodec.resynthesize`` on numpy audio ``[N]``: one ``[N]`` array per subset."""
    dev = next(codec.parameters()).device
    return [x.float().cpu().numpy() for x in codec.resynthesize(as_batch(audio, dev)[0, 0], subsets)]


def split_dir(corpus: str | Path, split: str) -> Path:
    path = Path(corpus) / split
    if not (path / "state.json").is_file():
        raise DataError(f"{path}: split not found (run the prepare stage first)")
    return path


def split_size(corpus: str | Path, split: str, limit: Optional[int] = None) -> int:
    """Rows ``iter_split`` yields with the same ``limit``."""
    n = shards.num_rows(split_dir(corpus, split))
    return min(n, limit) if limit else n


def iter_split(corpus: str | Path, split: str, columns: list[str],
               limit: Optional[int] = None) -> Iterator[dict[str, Any]]:
    """Rows of a prepared/merged split, streamed; at most ``limit`` (None or 0: all)."""
    stop = limit if limit else None
    yield from shards.iter_rows(split_dir(corpus, split), 0, stop, columns)


def header(scale: str, **models: Any) -> dict[str, Any]:
    """What every evaluation metrics file starts with: the scale and the models that made it."""
    return {"scale": scale, "models": models}
