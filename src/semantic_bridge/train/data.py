"""Training batches from the merged dataset: frame-aligned random crops.

Every batch is a pure function of (seed, step, rank): which utterances and where each crop
starts. A resumed run therefore sees exactly the batches an uninterrupted run would have, and
DDP ranks see different ones without a ``DistributedSampler``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ..base.errors import DataError
from ..base.frames import samples_per_frame
from ..base.shards import load_split


@dataclass
class Batch:
    """audio [B, 1, T*hop]; frame_mask [B, T] real frames; llm [B, T, D_llm] with
    llm_mask [B, T] (frames after the first finished token, and real); wavlm [B, T, D_wavlm];
    speaker [B] int64, the index of each crop's speaker in the split's sorted speaker list."""

    audio: Tensor
    frame_mask: Tensor
    llm: Tensor
    llm_mask: Tensor
    wavlm: Tensor
    speaker: Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def speaker_list(directory: str) -> list[str]:
    """The split's speakers, sorted: ``Batch.speaker`` indexes this list."""
    return sorted(set(load_split(directory).unique("speaker")))


def teacher_dims(directory: str) -> tuple[int, int]:
    """(llm dim, wavlm dim) from the merged dataset's features."""
    features = load_split(directory).features
    return int(features["llm"].shape[1]), int(features["wavlm"].shape[1])


class SegmentDataset(Dataset):
    """Crops of ``segment_frames`` frames from one merged split.

    Indexed by (row, crop_seed): the crop start is drawn from ``crop_seed``. Utterances shorter
    than a segment are zero-padded; their padding frames are masked."""

    def __init__(self, directory: str, segment_frames: int, sample_rate: int):
        self.data = load_split(directory).with_format("numpy")
        self.n_frames = np.asarray(self.data["n_frames"])
        self.segment_frames = segment_frames
        self.hop = samples_per_frame(sample_rate)
        if len(self.data) == 0:
            raise DataError(f"{directory}: no training rows")
        # np.unique sorts: the indices are into speaker_list(directory), without reading it again
        _, inverse = np.unique(np.asarray(self.data["speaker"]), return_inverse=True)
        self.speaker = inverse.astype(np.int64)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        index, crop_seed = key
        row = self.data[int(index)]
        total = int(row["n_frames"])
        seg = self.segment_frames
        start = int(np.random.default_rng(crop_seed).integers(0, max(total - seg, 0) + 1))
        stop = min(start + seg, total)
        n = stop - start
        audio = np.zeros(seg * self.hop, np.float32)
        clip = np.asarray(row["audio"], np.float32)[start * self.hop: stop * self.hop]
        audio[: len(clip)] = clip
        frame_mask = np.zeros(seg, bool)
        frame_mask[:n] = True
        llm = np.zeros((seg, row["llm"].shape[1]), np.float32)
        llm[:n] = row["llm"][start:stop]
        llm_mask = np.zeros(seg, bool)
        llm_mask[:n] = np.asarray(row["llm_mask"], bool)[start:stop]
        wavlm = np.zeros((seg, row["wavlm"].shape[1]), np.float32)
        wavlm[:n] = row["wavlm"][start:stop]
        return {"audio": audio, "frame_mask": frame_mask, "llm": llm, "llm_mask": llm_mask,
                "wavlm": wavlm, "speaker": self.speaker[int(index)]}


def collate(items: list[dict[str, np.ndarray]]) -> Batch:
    stack = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}
    return Batch(stack["audio"][:, None], stack["frame_mask"], stack["llm"], stack["llm_mask"],
                 stack["wavlm"], stack["speaker"])


class StepSampler(Sampler):
    """Endless batches of (row, crop_seed), batch ``step`` drawn from (seed, step, rank).

    Starts at ``start_step`` (the resumed global step). It has no length: training ends at
    ``train.steps``, not at an epoch boundary."""

    def __init__(self, n_rows: int, batch_size: int, seed: int, rank: int = 0,
                 start_step: int = 0):
        self.n_rows, self.batch_size, self.seed, self.rank = n_rows, batch_size, seed, rank
        self.start_step = start_step

    def batch(self, step: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, step, self.rank])
        rows = rng.integers(0, self.n_rows, self.batch_size)
        seeds = rng.integers(0, 2**31, self.batch_size)
        return [(int(r), int(s)) for r, s in zip(rows, seeds)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class SegmentData(L.LightningDataModule):
    """The training batches. They start at the restored global step, so a resumed run
    continues the sequence an uninterrupted run would have seen."""

    def __init__(self, directory: str, segment_frames: int, sample_rate: int, batch_size: int,
                 seed: int, num_workers: int):
        super().__init__()
        self.directory, self.segment_frames, self.sample_rate = directory, segment_frames, sample_rate
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def train_dataloader(self):
        dataset = SegmentDataset(self.directory, self.segment_frames, self.sample_rate)
        sampler = StepSampler(len(dataset), self.batch_size, self.seed,
                              rank=self.trainer.global_rank, start_step=self.trainer.global_step)
        workers = self.num_workers
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
            # fork after torch's thread pools have started can deadlock; spawn is safe
            multiprocessing_context="spawn" if workers else None,
            persistent_workers=workers > 0)


def teacher_stats(directory: str, max_rows: int = 2000) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-dimension mean and standard deviation of the teacher features over (at most
    ``max_rows``, spread evenly) training rows: LLM features on the frames ``llm_mask`` keeps,
    speech-teacher features on every frame. For ``DistillHeads.set_teacher_stats``."""
    data = load_split(directory)
    step = max(1, len(data) // max_rows)
    sums: dict[str, list] = {}
    for row in data.select(range(0, len(data), step)).with_format("numpy"):
        for name, keep in (("llm", np.asarray(row["llm_mask"], bool)), ("wavlm", None)):
            x = np.asarray(row[name], np.float64)
            x = x[keep] if keep is not None else x
            acc = sums.setdefault(name, [0, 0.0, 0.0])
            acc[0] += len(x)
            acc[1] = acc[1] + x.sum(0)
            acc[2] = acc[2] + (x * x).sum(0)
    out = {}
    for name, (n, s, ss) in sums.items():
        if n < 2:
            raise DataError(f"{directory}: fewer than 2 {name} teacher frames to standardise with")
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
        out[name] = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())
    return out
