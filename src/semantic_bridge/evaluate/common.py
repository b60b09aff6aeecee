"""What the evaluation runners share: the trained codec, resynthesis from a subset of
codebooks, reading test rows, small file writers, and the record of what produced a metric."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from ..codec.model import BridgeCodec
from ..config import CodebooksConfig, CodecConfig, Params
from ..data import shards


class EvalDataError(ValueError):
    """An evaluation input that cannot be used (missing split, nothing left to score)."""


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedCodec:
    """The trained codec and where it came from (recorded in every metrics file)."""

    codec: BridgeCodec
    path: str
    step: int
    init_from: Optional[str]
    books: CodebooksConfig
    frame_rate: float

    def bitrate_bps(self, levels: Optional[int] = None) -> float:
        """Bitrate of the first ``levels`` codebooks (all by default), from the checkpoint's config."""
        return self.books.bitrate_bps(self.frame_rate, levels)

    def info(self) -> dict[str, Any]:
        return {"checkpoint": self.path, "step": self.step, "init_from": self.init_from,
                "levels": self.codec.n_levels, "bitrate_bps": self.bitrate_bps()}


def load_codec(path: str | Path, dev: Optional[torch.device] = None) -> LoadedCodec:
    """``BridgeCodec.from_checkpoint`` plus the checkpoint's own record (config embedded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: codec checkpoint not found (run the train stage first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    codec = BridgeCodec.from_checkpoint(ckpt).to(dev or device())
    return LoadedCodec(codec, str(path), int(ckpt.get("step", 0)),
                       (ckpt.get("params") or {}).get("codec", {}).get("init_from"),
                       CodebooksConfig(**ckpt["codebooks"]), CodecConfig(**ckpt["codec"]).frame_rate)


def as_batch(audio: np.ndarray, dev: torch.device) -> torch.Tensor:
    """``audio[N]`` -> ``[1, 1, N]`` float32 on ``dev``."""
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None].to(dev)


@torch.no_grad()
def resynthesize_subsets(codec: BridgeCodec, audio: np.ndarray,
                         subsets: Sequence[Optional[Sequence[int]]]) -> list[np.ndarray]:
    """Encode ``audio[N]`` once and decode it from each subset of levels (None: all), each
    trimmed to ``N``."""
    dev = next(codec.parameters()).device
    codes = codec.encode(as_batch(audio, dev))
    return [codec.decode(codes, levels)[0, 0, : len(audio)].float().cpu().numpy() for levels in subsets]


def resynthesize(codec: BridgeCodec, audio: np.ndarray, levels: Optional[Sequence[int]] = None) -> np.ndarray:
    """Encode ``audio[N]`` and decode it from ``levels`` only (all by default), trimmed to ``N``."""
    return resynthesize_subsets(codec, audio, [levels])[0]


def level_groups(n_levels: int) -> dict[str, list[int]]:
    """The codebook subsets the evaluations report: CB0, CB0+1, CB2..CB8, all."""
    return {"cb0": [0], "cb01": [0, 1], "cb2_8": list(range(2, n_levels)), "all": list(range(n_levels))}


def split_dir(corpus: str | Path, split: str) -> Path:
    path = Path(corpus) / split
    if not (path / "state.json").is_file():
        raise EvalDataError(f"{path}: split not found (run the prepare stage first)")
    return path


def iter_split(corpus: str | Path, split: str, columns: list[str],
               limit: Optional[int] = None) -> Iterator[dict[str, Any]]:
    """Rows of a prepared/merged split, streamed; at most ``limit`` (None or 0: all)."""
    stop = limit if limit else None
    yield from shards.iter_rows(split_dir(corpus, split), 0, stop, columns)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.wav")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """Write a small plot/data file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def header(params: Params, **models: Any) -> dict[str, Any]:
    """What every evaluation metrics file starts with: the scale and the models that made it."""
    return {"scale": params.scale, "models": models}
