"""eval_probe: do content tokens predict words? The same small probe -- per-level code
embeddings (summed over the group's levels) -> a causal GRU -> a linear layer over the training
vocabulary -- reads the codes of CB0, of CB1 or of CB2..CB8 up to the end of word ``i`` and
predicts word ``i + 1``. Top-1 accuracy on the test split, beside the majority-word baseline.

Model selection: every ``eval_every`` steps the probe is scored on the valid split (speakers
disjoint from train and test); training stops after ``patience`` scores without a new best, and
the test split is read once, by the best-scoring state. A probe of 2048-entry embeddings per
level on a few thousand words overfits within a few hundred steps (test top-1 fell below the
majority baseline at the fixed 300 steps), so the step count is chosen on held-out data, never
on test.

Causality follows DESIGN §2: the prediction after word ``i`` uses frames that end by the word's
end time, ``floor(end / 0.08)`` frames; a word that ends inside the first frame gives no example.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..base.device import default_device
from ..base.errors import DataError
from ..base.frames import FRAME_SECONDS
from ..base.progress import track
from ..codec.model import group_name
from ..config import EvalProbeConfig
from .common import as_batch, header, iter_split, load_codec, split_size

log = logging.getLogger(__name__)
UNK = 0  # vocabulary index of words never seen as a training target


def probe_groups(n_levels: int, n_semantic: int) -> dict[str, list[int]]:
    """Each semantic level alone (CB0, CB1, ...), the semantic levels together, the acoustic
    levels together, and all: the groups of the disentanglement table."""
    groups = [[k] for k in range(n_semantic)] + [list(range(n_semantic)), list(range(n_semantic, n_levels))]
    return {**{group_name(g): g for g in groups}, "all": list(range(n_levels))}


@dataclass
class Utterance:
    codes: np.ndarray  # [K, T] int64
    positions: np.ndarray  # [M] frame index whose state predicts the next word
    targets: list[str]  # [M] the next word


def word_examples(words: list[dict], n_frames: int) -> tuple[list[int], list[str], int]:
    """(positions, next words, skipped): after word i, the last frame ending by its end time."""
    positions, targets, skipped = [], [], 0
    for w, nxt in zip(words[:-1], words[1:]):
        f = min(int(np.floor(w["end"] / FRAME_SECONDS + 1e-9)), n_frames)
        if f < 1:
            skipped += 1
            continue
        positions.append(f - 1)
        targets.append(str(nxt["word"]).lower())
    return positions, targets, skipped


class Probe(nn.Module):
    def __init__(self, levels: int, codebook_size: int, dim: int, vocab: int) -> None:
        super().__init__()
        self.embed = nn.ModuleList(nn.Embedding(codebook_size, dim) for _ in range(levels))
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, vocab)

    def forward(self, codes: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """codes [B, L, T] -> logits [N, V] at the N frames (rows[n], cols[n]); the state at t has
        seen frames <= t only. The vocabulary head runs at those frames alone."""
        x = sum(emb(codes[:, k]) for k, emb in enumerate(self.embed))
        return self.head(self.rnn(x)[0][rows, cols])


def _encode_split(codec, corpus: str, split: str) -> tuple[list[Utterance], int]:
    dev = next(codec.parameters()).device
    utts, skipped = [], 0
    rows = track(iter_split(corpus, split, ["audio", "words"]), f"eval_probe encode {split}",
                 split_size(corpus, split), "utt")
    for row in rows:
        with torch.no_grad():
            codes = codec.encode(as_batch(row["audio"], dev))[0].cpu().numpy()
        pos, tgt, skip = word_examples(row["words"], codes.shape[-1])
        skipped += skip
        if pos:
            utts.append(Utterance(codes, np.array(pos), tgt))
    if not utts:
        raise DataError(f"{corpus}/{split}: no utterance with two or more aligned words")
    return utts, skipped


def _batch(utts: list[Utterance], levels: list[int], vocab: dict[str, int], dev):
    t = max(u.codes.shape[-1] for u in utts)
    codes = torch.zeros(len(utts), len(levels), t, dtype=torch.long)
    rows, cols, targets = [], [], []
    for i, u in enumerate(utts):
        codes[i, :, : u.codes.shape[-1]] = torch.from_numpy(u.codes[levels])
        rows += [i] * len(u.positions)
        cols += u.positions.tolist()
        targets += [vocab.get(w, UNK) for w in u.targets]
    return codes.to(dev), torch.tensor(rows, device=dev), torch.tensor(cols, device=dev), \
        torch.tensor(targets, device=dev)


class EarlyStopping:
    """Best held-out score so far (higher is better) and when to stop: after ``patience``
    scores in a row without a strictly better one."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -float("inf")
        self.best_step = 0
        self.since_best = 0

    def update(self, step: int, score: float) -> bool:
        """Record ``score`` at ``step``; True when it is a new best."""
        if score > self.best:
            self.best, self.best_step, self.since_best = score, step, 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.since_best >= self.patience


def top1(probe: Probe, utts: list[Utterance], levels: list[int], vocab: dict[str, int], batch_size: int) -> float:
    """Top-1 accuracy over every example of ``utts``; an unseen word is never right."""
    dev = next(probe.parameters()).device
    probe.eval()
    hits = total = 0
    with torch.no_grad():
        for b in range(0, len(utts), batch_size):
            codes, r, c, y = _batch(utts[b : b + batch_size], levels, vocab, dev)
            guess = probe(codes, r, c).argmax(-1)
            hits += int(((guess == y) & (y != UNK)).sum())
            total += len(y)
    return hits / total


def train_probe(train: list[Utterance], valid: list[Utterance], test: list[Utterance], levels: list[int],
                size: int, vocab: dict[str, int], cfg: EvalProbeConfig, seed: int) -> dict[str, Any]:
    """Train on ``train``, select the step on ``valid`` (early stopping), score ``test`` once:
    test and valid top-1, the selected step, the steps run and the mean training loss of the
    10 steps up to the selected one."""
    dev = default_device()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = Probe(len(levels), size, cfg.dim, len(vocab) + 1).to(dev)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    losses: list[float] = []
    stopper = EarlyStopping(cfg.patience)
    best_state = copy.deepcopy(probe.state_dict())
    for step in range(1, cfg.steps + 1):
        probe.train()
        pick = rng.choice(len(train), size=min(cfg.batch_size, len(train)), replace=False)
        codes, r, c, y = _batch([train[i] for i in pick], levels, vocab, dev)
        loss = nn.functional.cross_entropy(probe(codes, r, c), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            if stopper.update(step, top1(probe, valid, levels, vocab, cfg.batch_size)):
                best_state = copy.deepcopy(probe.state_dict())
            if stopper.stop:
                break
    probe.load_state_dict(best_state)
    return {"top1": top1(probe, test, levels, vocab, cfg.batch_size), "valid_top1": stopper.best,
            "selected_step": stopper.best_step, "steps_run": len(losses),
            "final_train_loss": float(np.mean(losses[max(0, stopper.best_step - 10) : stopper.best_step]))}


def run_probe(cfg: EvalProbeConfig, scale: str, seed: int, merged: str, codec_path: str) -> dict[str, Any]:
    loaded = load_codec(codec_path)
    codec = loaded.codec
    train, skip_train = _encode_split(codec, merged, "train")
    valid, skip_valid = _encode_split(codec, merged, "valid")
    test, skip_test = _encode_split(codec, merged, "test")
    counts = Counter(w for u in train for w in u.targets)
    vocab = {w: i + 1 for i, (w, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
    test_targets = [w for u in test for w in u.targets]
    majority = counts.most_common(1)[0][0]
    results = {}
    for name, levels in probe_groups(codec.n_levels, codec.n_semantic).items():
        results[name] = {**train_probe(train, valid, test, levels, codec.books.size, vocab, cfg, seed),
                         "levels": levels}
        log.info("probe %s: test top-1 %.4f (valid %.4f, step %d of %d run)", name, results[name]["top1"],
                 results[name]["valid_top1"], results[name]["selected_step"], results[name]["steps_run"])
    return {**header(scale, codec=loaded.info()),
            "probe": {"architecture": "code embeddings -> GRU -> linear", "dim": cfg.dim,
                      "max_steps": cfg.steps, "eval_every": cfg.eval_every, "patience": cfg.patience,
                      "selection": "valid top-1", "lr": cfg.lr, "batch_size": cfg.batch_size},
            "examples": {"train": sum(len(u.targets) for u in train),
                         "valid": sum(len(u.targets) for u in valid), "test": len(test_targets),
                         "skipped_no_frames": skip_train + skip_valid + skip_test},
            "vocabulary": len(vocab),
            "test_oov_rate": sum(w not in vocab for w in test_targets) / len(test_targets),
            "majority_baseline": sum(w == majority for w in test_targets) / len(test_targets),
            "accuracy": results}
