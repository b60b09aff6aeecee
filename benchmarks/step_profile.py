"""Where one training step of the embedded recipe spends its time, part by part.

    python benchmarks/step_profile.py [--params params.yaml --data data/merged --steps 20]

Reads the merged data of ``dvc repro merge`` and the train params, builds the codec as the
train stage does (codebooks k-means'd on ``--init-frames`` frames: the init's size does not
change a step's cost), and times ``--steps`` phase-1 steps after ``--warmup``: batch assembly,
encoder, split quantizer, decoder, multi-scale mel loss, distillation heads, the backward pass
and the optimizer step. Prints milliseconds and share per part, and the step's audio-seconds
per second. Wall clock on the stage's thread count (``cpu_threads``); run it alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from semantic_bridge.base.stage import pin_numerics
from semantic_bridge.config import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/merged")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--init-frames", type=int, default=4096)
    a = ap.parse_args()
    p = load_params(a.params)
    pin_numerics(p.cpu_threads)  # before torch loads, as every stage does
    import torch

    from semantic_bridge.train.codebook_init import init_codebooks
    from semantic_bridge.train.data import SegmentDataset, StepSampler, collate
    from semantic_bridge.train.losses import masked_cosine_loss
    from semantic_bridge.train.module import BridgeModule
    from semantic_bridge.train.run import build_models, frames_per_step, segment_frames

    torch.set_num_threads(p.cpu_threads)
    data = Path(a.data)
    codec, heads, disc, _, adversary = build_models(p, data)
    init_codebooks(codec, data / "train", a.init_frames, frames_per_step(p))
    module = BridgeModule(codec, heads, disc, p.train, p.codebooks, p.seed, {}, adversary)
    params = list(codec.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=p.train.lr, betas=tuple(p.train.betas))
    train = SegmentDataset(str(data / "train"), segment_frames(p), p.data.sample_rate)
    sampler = StepSampler(len(train), p.train.batch_size, p.seed)
    lam = p.train.lambdas
    spent: dict[str, float] = {}
    audio_seconds = 0.0

    for step in range(a.warmup + a.steps):
        timed = step >= a.warmup
        t = time.perf_counter()

        def tick(part: str) -> None:
            nonlocal t
            now = time.perf_counter()
            if timed:
                spent[part] = spent.get(part, 0.0) + now - t
            t = now

        batch = collate([train[k] for k in sampler.batch(step)])
        tick("batch")
        latent = codec.encode_latent(batch.audio)
        tick("encoder")
        q = codec.quantize(latent, batch.frame_mask)
        tick("quantizer")
        audio = codec.decode_latent(q.latent())
        tick("decoder")
        mel = module.mel_loss(audio, batch.audio)
        tick("mel loss")
        out = heads(q)
        llm, wavlm = heads.targets(batch.llm, batch.wavlm)
        distill = (lam["distill/llm"] * masked_cosine_loss(out.llm, llm, batch.llm_mask & batch.frame_mask)
                   + lam["distill/wavlm"] * masked_cosine_loss(out.wavlm, wavlm, batch.frame_mask))
        tick("heads")
        total = lam["mel/loss"] * mel + lam["vq/commitment"] * q.commitment + distill
        opt.zero_grad()
        total.backward()
        tick("backward")
        opt.step()
        tick("optimizer")
        if timed:
            audio_seconds += batch.audio.shape[0] * batch.audio.shape[-1] / p.data.sample_rate

    whole = sum(spent.values())
    print(f"step_profile: {a.steps} steps, batch {p.train.batch_size} x {p.train.segment_seconds} s, "
          f"{p.cpu_threads} threads")
    for part, s in spent.items():
        print(f"  {part:10s} {1000 * s / a.steps:7.1f} ms  {100 * s / whole:5.1f} %")
    print(f"  {'step':10s} {1000 * whole / a.steps:7.1f} ms  ({audio_seconds / whole:.1f} audio-s/s)")


if __name__ == "__main__":
    main()
