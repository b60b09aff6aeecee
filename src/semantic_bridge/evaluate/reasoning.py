"""eval_reasoning: do codec features help audio reasoning? One frozen audio encoder, a trainable
mapper (Linear -> GELU -> Linear, one LM input embedding per pooled encoder frame) and a frozen
causal LM (the real SmolLM2-135M-Instruct), trained with cross-entropy on the answer tokens only,
on ReasonAQA-format questions (one or two clips). The same hyperparameters for every encoder;
accuracy = normalised exact match of the greedy answer, per question type and overall, on the
test questions and on the training questions (which shows whether the mapper can steer the LM).

Input sequence: ``Question: {input} Audio 1:`` <clip 1> [`` Audio 2:`` <clip 2>] `` Answer:``
then the answer tokens and EOS (the only supervised tokens). The question comes first so that
its part of the sequence does not depend on the mapper: its keys and values are computed once
per distinct question, without gradients, and training runs the LM on the audio and answer
tokens only -- the same model output at a fraction of the cost (tested against the full
sequence).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..base import shards
from ..base.device import default_device
from ..base.errors import DataError
from ..base.evalsets import QaItem, read_reasonaqa
from ..base.files import write_text
from ..base.progress import Progress, track
from ..config import EvalReasoningConfig
from .common import header
from .encoders import make_encoder
from .metrics import has_words, normalize

log = logging.getLogger(__name__)
IGNORE = -100


def make_mapper(dim_in: int, dim_lm: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim_in, dim_lm), nn.GELU(), nn.Linear(dim_lm, dim_lm))


@dataclass
class Example:
    """One question as token ids and clip references, ready to embed."""

    prefix: tuple[int, ...]  # "Question: ... Audio 1:" -- independent of the mapper
    parts: list[Any]  # after the prefix: clip paths (str) and token-id lists, in order
    answer: list[int]  # answer ids + EOS (supervised)
    item: QaItem


class QaModel(nn.Module):
    """Frozen LM + trainable mapper; clip features are precomputed (the encoder is frozen)."""

    def __init__(self, lm, mapper: nn.Module, features: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.lm, self.mapper, self.features = lm, mapper, features
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self._prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @property
    def table(self) -> nn.Embedding:
        return self.lm.get_input_embeddings()

    def embed(self, ex: Example, with_answer: bool, with_prefix: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings ``[L, H]`` and labels ``[L]`` (answer ids, IGNORE elsewhere)."""
        dev = self.table.weight.device
        parts = ([list(ex.prefix)] if with_prefix else []) + ex.parts + ([ex.answer] if with_answer else [])
        pieces, labels = [], []
        for part in parts:
            if isinstance(part, str):
                x = self.mapper(self.features[part].to(dev))
            else:
                x = self.table(torch.tensor(part, device=dev))
            pieces.append(x)
            labels.append(torch.full((len(x),), IGNORE, device=dev))
        if with_answer:
            labels[-1] = torch.tensor(ex.answer, device=dev)
        return torch.cat(pieces).to(self.table.weight.dtype), torch.cat(labels)

    def batch(self, examples: list[Example], with_answer: bool, left_pad: bool, with_prefix: bool = True):
        seqs = [self.embed(ex, with_answer, with_prefix) for ex in examples]
        n = max(len(x) for x, _ in seqs)
        h = seqs[0][0].shape[-1]
        dev = seqs[0][0].device
        x = torch.zeros(len(seqs), n, h, device=dev, dtype=seqs[0][0].dtype)
        labels = torch.full((len(seqs), n), IGNORE, device=dev)
        mask = torch.zeros(len(seqs), n, dtype=torch.long, device=dev)
        for i, (e, lab) in enumerate(seqs):
            sl = slice(n - len(e), n) if left_pad else slice(0, len(e))
            x[i, sl], labels[i, sl], mask[i, sl] = e, lab, 1
        return x, mask, labels

    @torch.no_grad()
    def prefix_cache(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values) ``[1, H_kv, P, d]`` of a question prefix, computed once."""
        if prefix not in self._prefixes:
            ids = torch.tensor([prefix], device=self.table.weight.device)
            cache = self.lm(input_ids=ids, use_cache=True).past_key_values
            self._prefixes[prefix] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefixes[prefix]

    def loss(self, examples: list[Example]) -> torch.Tensor:
        """Answer cross-entropy, the LM run on audio + answer tokens after cached question
        prefixes (left-padded to one length; each example's positions continue its own)."""
        from transformers import DynamicCache

        x, suffix_mask, labels = self.batch(examples, with_answer=True, left_pad=False, with_prefix=False)
        caches = [self.prefix_cache(ex.prefix) for ex in examples]
        lengths = [len(ex.prefix) for ex in examples]
        p = max(lengths)

        def left_pad(t: torch.Tensor) -> torch.Tensor:
            return nn.functional.pad(t, (0, 0, p - t.shape[2], 0))

        layers = [(torch.cat([left_pad(c[k][0]) for c in caches]), torch.cat([left_pad(c[k][1]) for c in caches]))
                  for k in range(len(caches[0]))]
        prefix_mask = torch.tensor([[0] * (p - n) + [1] * n for n in lengths], device=x.device)
        positions = torch.tensor(lengths, device=x.device)[:, None] + torch.arange(x.shape[1], device=x.device)
        out = self.lm.base_model(inputs_embeds=x, attention_mask=torch.cat([prefix_mask, suffix_mask], dim=1),
                                 position_ids=positions, past_key_values=DynamicCache(layers), use_cache=True)
        # the vocabulary projection only where a label is predicted (the answer tokens): a fifth
        # of a 135M LM's work at every other position, for the same loss
        targets = labels[:, 1:]
        supervised = targets != IGNORE
        logits = self.lm.get_output_embeddings()(out.last_hidden_state[:, :-1][supervised]).float()
        return nn.functional.cross_entropy(logits, targets[supervised])

    def full_loss(self, examples: list[Example]) -> torch.Tensor:
        """The same loss from the whole sequence, no cache (reference for tests)."""
        x, mask, labels = self.batch(examples, with_answer=True, left_pad=False)
        return self.lm(inputs_embeds=x, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def answer(self, examples: list[Example], max_tokens: int, eos: int, pad: int) -> list[list[int]]:
        x, mask, _ = self.batch(examples, with_answer=False, left_pad=True)
        out = self.lm.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=max_tokens,
                               do_sample=False, eos_token_id=eos, pad_token_id=pad)
        return out.tolist()


def _examples(items: list[QaItem], tok) -> list[Example]:
    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    out = []
    for it in items:
        parts: list[Any] = [it.filepath1]
        if it.filepath2:
            parts += [ids(" Audio 2:"), it.filepath2]
        parts.append(ids(" Answer:"))
        out.append(Example(tuple(ids(f"Question: {it.input} Audio 1:")), parts,
                           ids(" " + it.answer) + [tok.eos_token_id], it))
    return out


def pool_tokens(frames: np.ndarray, frame_rate: Optional[float], token_seconds: float) -> np.ndarray:
    """``[T, D]`` encoder frames -> ``[ceil(T / w), D]``: the mean of each run of
    ``w = round(token_seconds * frame_rate)`` frames (the last run may be shorter), so a clip's
    token count still says how long it is. One clip vector (``frame_rate`` None) is kept."""
    w = 1 if frame_rate is None else max(1, round(token_seconds * frame_rate))
    n = -(-len(frames) // w)
    return np.stack([frames[i * w : (i + 1) * w].mean(0) for i in range(n)])


def clip_features(encoder, clips_dir: Path, needed: set[str], max_samples: int, sample_rate: int,
                  token_seconds: float) -> dict[str, torch.Tensor]:
    feats = {}
    rows = shards.iter_rows(clips_dir, columns=["filepath", "audio"])
    for row in track(rows, "eval_reasoning clip features", shards.num_rows(clips_dir), "clip"):
        if row["filepath"] in needed:
            frames = encoder(row["audio"][:max_samples], sample_rate)
            feats[row["filepath"]] = torch.from_numpy(pool_tokens(frames, encoder.frame_rate, token_seconds))
    # every feature dimension standardised over all clips: encoders differ wildly in scale, and
    # one mapper learning rate then fits them all
    stacked = torch.cat(list(feats.values()))
    mean, std = stacked.mean(0), stacked.std(0).clamp(min=1e-6)
    feats = {k: (v - mean) / std for k, v in feats.items()}
    missing = needed - set(feats)
    if missing:
        raise DataError(f"{clips_dir}: no audio for {len(missing)} question clips, e.g. {sorted(missing)[0]}")
    return feats


def run_reasoning(cfg: EvalReasoningConfig, scale: str, seed: int, sample_rate: int,
                  encoder_name: str, prepared: str, loss_plot: str) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if encoder_name not in cfg.encoders:
        raise DataError(f"--encoder {encoder_name}: not in eval.reasoning.encoders")
    model_path = cfg.encoders[encoder_name]
    prepared = Path(prepared)
    train_items = read_reasonaqa(prepared / "qa" / "train.json")
    test_items = read_reasonaqa(prepared / "qa" / "test.json")
    if not train_items or not test_items:
        raise DataError(f"{prepared / 'qa'}: need train and test questions")
    rate = sample_rate
    encoder = make_encoder(encoder_name, model_path, cfg.htsat_features)
    needed = {p for it in train_items + test_items for p in (it.filepath1, it.filepath2) if p}
    feats = clip_features(encoder, prepared / "qa_audio", needed, int(cfg.max_audio_sec * rate), rate,
                          cfg.token_seconds)
    feature_shape = {"frame_rate_hz": encoder.frame_rate, "dim": encoder.dim,
                     "kind": cfg.htsat_features if encoder_name == "htsat" else "framewise",
                     "tokens_per_clip_max": max(len(f) for f in feats.values())}
    del encoder

    torch.manual_seed(seed)
    dev = default_device()
    tok = AutoTokenizer.from_pretrained(cfg.lm)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(cfg.lm, dtype=dtype).to(dev).eval()
    dim_in = next(iter(feats.values())).shape[-1]
    mapper = make_mapper(dim_in, lm.config.hidden_size).to(dev)
    model = QaModel(lm, mapper, feats)
    train, test = _examples(train_items, tok), _examples(test_items, tok)
    opt = torch.optim.AdamW(mapper.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    curve = []
    progress = Progress(f"eval_reasoning@{encoder_name}", cfg.steps, "step")
    for step in range(1, cfg.steps + 1):
        pick = rng.choice(len(train), size=min(cfg.batch_size, len(train)), replace=False)
        loss = model.loss([train[i] for i in pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(loss.item())
        progress.update(loss=curve[-1])
    progress.close()
    mapper.eval()

    scored = [ex for ex in test if has_words(ex.item.answer)]  # exact match needs a word
    if len(scored) < len(test):
        log.warning("%d test questions have no answer word after normalisation: skipped",
                    len(test) - len(scored))
    if not scored:
        raise DataError(f"{prepared / 'qa' / 'test.json'}: no test answer has a word to match")
    correct, total = answer_accuracy(model, tok, scored, cfg)
    train_scored = [ex for ex in train if has_words(ex.item.answer)]
    if 0 < cfg.train_eval_questions < len(train_scored):  # a seeded subset: answering costs time
        keep = np.random.default_rng(seed).choice(len(train_scored), cfg.train_eval_questions, replace=False)
        train_scored = [train_scored[i] for i in sorted(keep)]
    train_correct, train_total = answer_accuracy(model, tok, train_scored, cfg)
    write_text(loss_plot, "step\tloss\n" + "".join(f"{i}\t{v:.6f}\n" for i, v in enumerate(curve, 1)))
    per_type = {t: {"accuracy": correct[t] / total[t], "questions": total[t]} for t in sorted(total)}
    # chance-free reference: always answering the most frequent training answer of the type
    majority = _majority_accuracy(train_items, [ex.item for ex in scored])
    return {**header(scale, encoder={"name": encoder_name, "model": model_path, "dim": dim_in,
                                     "features": feature_shape}, lm=cfg.lm),
            "hyperparameters": {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
                                "max_audio_sec": cfg.max_audio_sec, "token_seconds": cfg.token_seconds},
            "questions": {"train": len(train_items), "test": len(scored), "train_answered": len(train_scored)},
            "skipped": {"empty_answer": len(test) - len(scored)},
            "final_train_loss": float(np.mean(curve[-10:])),
            "accuracy": sum(correct.values()) / sum(total.values()),
            "train_accuracy": sum(train_correct.values()) / sum(train_total.values()),
            "train_majority_baseline": _majority_accuracy(train_items, [ex.item for ex in train_scored]),
            "per_type": per_type,
            "majority_baseline": majority}


def answer_accuracy(model: QaModel, tok, examples: list[Example], cfg: EvalReasoningConfig
                    ) -> tuple[Counter, Counter]:
    """(correct, total) per question type: normalised exact match of the greedy answer."""
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    correct: Counter = Counter()
    total: Counter = Counter()
    for b in range(0, len(examples), cfg.answer_batch_size):
        chunk = examples[b : b + cfg.answer_batch_size]
        for ex, ids in zip(chunk, model.answer(chunk, cfg.max_answer_tokens, eos, pad), strict=True):
            ids = ids[: ids.index(eos)] if eos in ids else ids
            guess = normalize(tok.decode(ids, skip_special_tokens=True))
            total[ex.item.taskname] += 1
            correct[ex.item.taskname] += int(guess == normalize(ex.item.answer))
    return correct, total


def _majority_accuracy(train: list[QaItem], test: list[QaItem]) -> float:
    """Accuracy of answering each test question with its type's most frequent training answer."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for it in train:
        counts[it.taskname][normalize(it.answer)] += 1
    hits = sum(1 for it in test if counts[it.taskname]
               and counts[it.taskname].most_common(1)[0][0] == normalize(it.answer))
    return hits / len(test)
