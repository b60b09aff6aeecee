"""Encode + decode throughput of BridgeCodec against transformers' MimiModel at the same sizes
(kyutai Mimi's: 512 wide, 8 transformer layers per side, 9 of its codebooks), random weights, in
the same process, as a ratio (goal: >= 1.0). bf16 autocast on a GPU, fp32 on CPU.

    python benchmarks/codec_throughput.py [--seconds 10 --batch 4 --repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import MimiConfig, MimiModel

from semantic_bridge.codec.model import BridgeCodec
from semantic_bridge.config import CodebooksConfig, CodecConfig

MIMI = CodecConfig(hidden_size=512, num_filters=64, transformer_layers=8, attention_heads=8,
                   intermediate_size=2048, codebook_dim=256)


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up (kernel selection, allocator)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    books = CodebooksConfig()
    bridge = BridgeCodec.build(MIMI, books, 24000).to(device)
    # codebooks must be initialised before encoding (k-means on random latents is enough here)
    latent = torch.randn(books.size * 2, MIMI.hidden_size, device=device)
    bridge.quantizer.init_from_data(latent, frames_per_step=books.size)
    bridge.eval()
    mimi = MimiModel(MimiConfig(num_quantizers=32, num_semantic_quantizers=1)).to(device).eval()
    x = torch.randn(args.batch, 1, int(args.seconds * 24000), device=device) * 0.1
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    @torch.inference_mode()
    def run_bridge():
        with autocast:
            return bridge.decode(bridge.encode(x))

    @torch.inference_mode()
    def run_mimi():
        with autocast:
            codes = mimi.encode(x, num_quantizers=books.n_levels).audio_codes
            return mimi.decode(codes).audio_values

    t_bridge, t_mimi = timed(run_bridge, args.repeats, device), timed(run_mimi, args.repeats, device)
    audio = args.batch * args.seconds
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"encode+decode of {args.batch} x {args.seconds:g} s at Mimi size, {name}, "
          f"{'bf16' if device.type == 'cuda' else 'fp32'}:")
    print(f"  BridgeCodec: {t_bridge:.3f} s ({audio / t_bridge:.1f} audio-s/s)")
    print(f"  MimiModel  : {t_mimi:.3f} s ({audio / t_mimi:.1f} audio-s/s)")
    print(f"  ratio (Bridge throughput / Mimi throughput): {t_mimi / t_bridge:.2f}")


if __name__ == "__main__":
    main()
