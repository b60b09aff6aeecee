"""Learning curve of the codec recipe, fast: the train stage's generator losses (reconstruction,
commitment, distillation; no discriminator) in a plain loop, with held-out STOI of the 9-level
and the CB0+1 resynthesis and the per-level code perplexity every ``--every`` steps.

This is the tool the recipe in the README was chosen with (phase 1 only, so a point costs about
0.25 s of 2-core CPU per step instead of the full stage's GAN steps). It reads the merged data of
``dvc repro merge``::

    python benchmarks/learning_curve.py --tag lr1e-3 --steps 700 --lr 1e-3 --dropout 0.2 --ramp 300

and prints one JSON line per evaluation (also written to ``--out``/<tag>.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from semantic_bridge.config import load_params
from semantic_bridge.train.codebook_init import init_codebooks
from semantic_bridge.train.data import SegmentDataset, StepSampler, collate
from semantic_bridge.train.module import BridgeModule, batch_perplexity
from semantic_bridge.train.run import build_models, frames_per_step, segment_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default="curve")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/merged")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--lr", type=float, help="default: train.lr")
    ap.add_argument("--betas", type=float, nargs=2, help="default: train.betas")
    ap.add_argument("--dropout", type=float, help="default: codebooks.dropout")
    ap.add_argument("--ramp", type=int, help="default: codebooks.dropout_ramp_steps")
    ap.add_argument("--output-scale", type=float, help="default: codec.output_init_scale")
    ap.add_argument("--valid-crops", type=int, default=8)
    a = ap.parse_args()
    from pystoi import stoi

    p = load_params(a.params)
    if a.dropout is not None:
        p.codebooks.dropout = a.dropout
    if a.ramp is not None:
        p.codebooks.dropout_ramp_steps = a.ramp
    if a.output_scale is not None:
        p.codec.output_init_scale = a.output_scale
    lr = a.lr if a.lr is not None else p.train.lr
    betas = tuple(a.betas) if a.betas else tuple(p.train.betas)
    torch.manual_seed(p.seed)
    data = Path(a.data)
    codec, heads, disc, _ = build_models(p, data)  # applies codec.output_init_scale
    init_codebooks(codec, data / "train", p.codebooks.init_frames, frames_per_step(p))
    module = BridgeModule(codec, heads, disc, p.train, p.codebooks, p.seed, {})
    params = list(codec.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=betas)
    seg, sr = segment_frames(p), p.data.sample_rate
    train = SegmentDataset(str(data / "train"), seg, sr)
    valid = SegmentDataset(str(data / "valid"), seg, sr)
    held = collate([valid[(i * 7 % len(valid), i)] for i in range(a.valid_crops)])
    sampler = StepSampler(len(train), p.train.batch_size, p.seed)

    @torch.no_grad()
    def evaluate(step: int) -> dict:
        codec.eval()
        row: dict = {"step": step}
        codes = codec.encode(held.audio)
        for name, levels in (("stoi_all", None), ("stoi_cb0_1", [0, 1])):
            y = codec.decode(codes, levels)
            row[name] = round(float(np.mean([stoi(held.audio[i, 0].numpy(), y[i, 0].numpy(), sr)
                                             for i in range(len(y))])), 3)
        ppl = batch_perplexity(codes, held.frame_mask, p.codebooks.size)
        row.update({k.split("/")[-1]: round(float(v), 1) for k, v in ppl.items()})
        codec.train()
        return row

    history, t0 = [], time.time()
    for step in range(a.steps + 1):
        if step % a.every == 0:
            row = evaluate(step)
            row["seconds"] = round(time.time() - t0)
            history.append(row)
            print(a.tag, json.dumps(row), flush=True)
        if step == a.steps:
            break
        batch = collate([train[k] for k in sampler.batch(step)])
        _, losses, _ = module.generator_losses(batch, step, torch.Generator().manual_seed(step))
        total = sum(p.train.lambdas[k] * v for k, v in losses.items())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, p.train.grad_clip or float("inf"))
        opt.step()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.tag}.json").write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    main()
