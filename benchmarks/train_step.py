"""One training step of the bridge codec at Mimi size (random weights): speed and memory.

    python benchmarks/train_step.py                      # Mimi size, CPU or GPU (auto)
    python benchmarks/train_step.py --batch-size 16 --seconds 12 --phase adversarial

Runs the real ``BridgeModule.training_step`` under a Lightning ``Trainer`` (bf16-mixed on
GPU, fp32 on CPU) on random batches, and prints per phase: seconds per step, audio-seconds
per second, peak memory (CUDA allocator peak on GPU, process peak RSS on CPU), FLOPs per
step counted by ``torch.utils.flop_counter`` and, on GPU, MFU against the card's dense bf16
peak (``--peak-tflops`` to override).
"""

from __future__ import annotations

import argparse
import resource
import time

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from semantic_bridge.codec.heads import DistillHeads
from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.config import (CodebooksConfig, CodecConfig, DiscriminatorConfig,
                                    TrainConfig)
from semantic_bridge.train.data import Batch
from semantic_bridge.train.discriminator import MultiScaleStftDiscriminator
from semantic_bridge.train.module import BridgeModule

MIMI = CodecConfig(hidden_size=512, num_filters=64, transformer_layers=8, attention_heads=8,
                   intermediate_size=2048, codebook_dim=256)
PAPER_DISC = DiscriminatorConfig(filters=32, n_ffts=[2048, 1024, 512, 256, 128])
DENSE_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0}


class Timer(L.Callback):
    def __init__(self, warmup: int, count_flops_at: int):
        self.warmup, self.flops_at = warmup, count_flops_at
        self.times: list[float] = []
        self.flops = 0
        self._mode = None

    def _sync(self, module):
        if module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._sync(module)
        if trainer.global_step == self.flops_at:
            self._mode = FlopCounterMode(display=False)
            self._mode.__enter__()
        if trainer.global_step == self.warmup and module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._sync(module)
        elapsed = time.perf_counter() - self._t
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops = self._mode.get_total_flops()
            self._mode = None
        elif trainer.global_step > self.warmup:  # global_step already counts this step
            self.times.append(elapsed)


def random_batch(batch: int, seconds: float, llm_dim: int, wavlm_dim: int) -> Batch:
    frames = round(seconds * 12.5)
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(batch, 1, frames * 1920, generator=g) * 0.1,
                 torch.ones(batch, frames, dtype=torch.bool),
                 torch.randn(batch, frames, llm_dim, generator=g),
                 torch.ones(batch, frames, dtype=torch.bool),
                 torch.randn(batch, frames, wavlm_dim, generator=g),
                 torch.zeros(batch, dtype=torch.long))  # speaker index (unused: no adversary)


def run(args, phase: str) -> dict:
    gpu = torch.cuda.is_available() and args.device != "cpu"
    torch.manual_seed(0)
    books = CodebooksConfig()
    codec = BridgeCodec.build(MIMI, books, 24000)
    heads = DistillHeads(MIMI.hidden_size, 1536, 1024)  # Qwen2.5-1.5B, WavLM-Large widths
    disc = MultiScaleStftDiscriminator(PAPER_DISC.n_ffts, PAPER_DISC.filters)
    steps = args.warmup + 1 + args.steps  # warm-up, one step under the FLOP counter, timed
    train = TrainConfig(steps=steps, batch_size=args.batch_size, segment_seconds=args.seconds,
                        adversarial_start=0 if phase == "adversarial" else steps + 1,
                        discriminator=PAPER_DISC)
    module = BridgeModule(codec, heads, disc, train, books, 0, {})  # the speaker adversary is off by default
    batch = random_batch(args.batch_size, args.seconds, 1536, 1024)
    timer = Timer(args.warmup + 1, count_flops_at=args.warmup)
    trainer = L.Trainer(max_steps=steps, accelerator="gpu" if gpu else "cpu", devices=1,
                        precision="bf16-mixed" if gpu else "32-true", logger=False,
                        callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    per_step = sorted(timer.times)[len(timer.times) // 2]  # median
    out = {"phase": phase, "device": torch.cuda.get_device_name() if gpu else "cpu",
           "params_M": sum(p.numel() for p in codec.parameters()) / 1e6,
           "s_per_step": per_step,
           "audio_s_per_s": args.batch_size * args.seconds / per_step,
           "tflop_per_step": timer.flops / 1e12,
           "achieved_tflops": timer.flops / per_step / 1e12}
    if gpu:
        out["peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
        peak = args.peak_tflops or next((v for k, v in DENSE_BF16_TFLOPS.items() if k in name), None)
        out["mfu"] = out["achieved_tflops"] / peak if peak else None
    else:
        out["peak_rss_GiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="segment length")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--phase", choices=["recon", "adversarial", "both"], default="both")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    phases = ["recon", "adversarial"] if args.phase == "both" else [args.phase]
    print(f"batch {args.batch_size} x {args.seconds:g} s, Mimi-size codec, paper discriminator")
    for phase in phases:
        r = run(args, phase)
        mem = (f"peak {r['peak_mem_GiB']:.2f} GiB (CUDA)" if "peak_mem_GiB" in r
               else f"peak RSS {r['peak_rss_GiB']:.2f} GiB")
        mfu = f", MFU {r['mfu']:.1%}" if r.get("mfu") is not None else ""
        print(f"{phase:12s} {r['device']}: {r['s_per_step']:.3f} s/step, "
              f"{r['audio_s_per_s']:.2f} audio-s/s, {mem}, "
              f"{r['tflop_per_step']:.3f} TFLOP/step, {r['achieved_tflops']:.3f} TFLOP/s{mfu}"
              f" ({r['params_M']:.1f} M codec params)")


if __name__ == "__main__":
    main()
