"""Learning curve of the codec recipe, fast: the train stage's generator losses (reconstruction,
commitment, distillation; no discriminator) in a plain loop, with, every ``--every`` steps, the
held-out mel loss and STOI of the 9-level and the CB0+1 resynthesis (``--valid-crops`` valid
crops), the per-level code perplexity, and -- with ``--wer-utterances`` > 0 -- WER of the
embedded ASR (``eval.wer``) on that many whole valid utterances, original and both resyntheses.
Each point records wall seconds since the start, and training-only wall and process CPU seconds
(all threads; evaluations excluded).

This is the tool the recipe in the README was chosen with (phase 1 only, so a point costs about
0.25 s of 2-core CPU per step instead of the full stage's GAN steps). It reads the merged data of
``dvc repro merge``::

    python benchmarks/learning_curve.py --tag lr1e-3 --steps 700 --lr 1e-3 --dropout 0.2 --ramp 300
    python benchmarks/learning_curve.py --tag long --steps 3600 --every 400 --wer-utterances 16

and prints one JSON line per evaluation (also written to ``--out``/<tag>.json, with a plot of
STOI, mel loss and WER against training CPU-minutes in ``--out``/<tag>.png). ``--replot`` redraws
the plot of an existing <tag>.json without training.
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
from semantic_bridge.train.losses import masked_cosine_loss
from semantic_bridge.train.module import BridgeModule, batch_perplexity
from semantic_bridge.train.run import build_models, frames_per_step, segment_frames


def plot(history: list[dict], path: Path) -> None:
    """STOI, mel loss and (when measured) WER of the 9-level and CB0+1 rows against training
    CPU-minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["train_cpu_seconds"] / 60 for r in history]
    panels = [m for m in ("stoi", "mel", "wer") if f"{m}_all" in history[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, m in zip(np.atleast_1d(axes), panels):
        for row, label in (("all", "9 levels"), ("cb0_1", "CB0+1")):
            ax.plot(x, [r[f"{m}_{row}"] for r in history], marker="o", ms=3, label=label)
        ax.set_xlabel("training CPU-minutes")
        ax.set_title({"stoi": "STOI (held-out crops)", "mel": "mel loss", "wer": "WER (Whisper tiny.en)"}[m])
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default="curve")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/merged")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--cpu-minutes", type=float, default=0,
                    help="also stop (after a last evaluation) once training has used this much process CPU time")
    ap.add_argument("--lr", type=float, help="default: train.lr")
    ap.add_argument("--betas", type=float, nargs=2, help="default: train.betas")
    ap.add_argument("--dropout", type=float, help="default: codebooks.dropout")
    ap.add_argument("--ramp", type=int, help="default: codebooks.dropout_ramp_steps")
    ap.add_argument("--output-scale", type=float, help="default: codec.output_init_scale")
    ap.add_argument("--quantization-rate", type=float, help="default: codebooks.quantization_rate")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: cpu_threads)")
    ap.add_argument("--lambda", dest="lambdas", action="append", default=[], metavar="KEY=WEIGHT",
                    help="a train.lambdas weight, e.g. distill/llm=5 (repeatable)")
    ap.add_argument("--valid-crops", type=int, default=8)
    ap.add_argument("--wer-utterances", type=int, default=0, help="whole valid utterances for WER (0: no WER)")
    ap.add_argument("--corpus", default="data/prepared/corpus", help="transcripts and audio for WER")
    ap.add_argument("--replot", type=Path, help="redraw the plot of this <tag>.json and exit")
    a = ap.parse_args()
    if a.replot:
        plot(json.loads(a.replot.read_text()), a.replot.with_suffix(".png"))
        return
    from pystoi import stoi

    p = load_params(a.params)
    if a.dropout is not None:
        p.codebooks.dropout = a.dropout
    if a.ramp is not None:
        p.codebooks.dropout_ramp_steps = a.ramp
    if a.output_scale is not None:
        p.codec.output_init_scale = a.output_scale
    for item in a.lambdas:
        key, _, weight = item.partition("=")
        if key not in p.train.lambdas:
            raise SystemExit(f"--lambda: unknown loss {key!r}; known: {', '.join(p.train.lambdas)}")
        p.train.lambdas[key] = float(weight)
    if a.quantization_rate is not None:
        p.codebooks.quantization_rate = a.quantization_rate
    torch.set_num_threads(a.threads or p.cpu_threads)
    lr = a.lr if a.lr is not None else p.train.lr
    betas = tuple(a.betas) if a.betas else tuple(p.train.betas)
    torch.manual_seed(p.seed)
    data = Path(a.data)
    codec, heads, disc, _, adversary = build_models(p, data)  # applies codec.output_init_scale
    init_codebooks(codec, data / "train", p.codebooks.init_frames, frames_per_step(p))
    module = BridgeModule(codec, heads, disc, p.train, p.codebooks, p.seed, {}, adversary)
    params = list(codec.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=betas)
    seg, sr = segment_frames(p), p.data.sample_rate
    train = SegmentDataset(str(data / "train"), seg, sr)
    valid = SegmentDataset(str(data / "valid"), seg, sr)
    held = collate([valid[(i * 7 % len(valid), i)] for i in range(a.valid_crops)])
    sampler = StepSampler(len(train), p.train.batch_size, p.seed)

    asr, utts, refs = None, [], []
    if a.wer_utterances > 0:
        from semantic_bridge.evaluate.asr import make_recognizer
        from semantic_bridge.evaluate.common import iter_split
        from semantic_bridge.evaluate.metrics import error_rates, has_words

        asr = make_recognizer(p.eval.wer, a.corpus)
        rows = iter_split(a.corpus, "valid", ["text", "audio", "sample_rate"])
        utts = [r for r in rows if has_words(r["text"])][: a.wer_utterances]
        refs = [r["text"] for r in utts]
        originals = asr.transcribe([(r["audio"], r["sample_rate"]) for r in utts])
        print(a.tag, json.dumps({"wer_original": round(error_rates(refs, originals).wer, 3),
                                 "utterances": len(utts)}), flush=True)

    @torch.no_grad()
    def evaluate(step: int) -> dict:
        codec.eval()
        row: dict = {"step": step}
        latent = codec.encode_latent(held.audio)  # encoded once: every row and the heads read it
        q = codec.quantize(latent, held.frame_mask)
        codes = q.codes
        decoded = {name: codec.decode(codes, levels)
                   for name, levels in (("all", None), ("cb0_1", [0, 1]), ("cb0", [0]))}
        decoded["latent"] = codec.decode_latent(latent)  # unquantized: no bitrate limit at all
        for name, y in decoded.items():
            row[f"stoi_{name}"] = round(float(np.mean([stoi(held.audio[i, 0].numpy(), y[i, 0].numpy(), sr)
                                                       for i in range(len(y))])), 3)
            row[f"mel_{name}"] = round(float(module.mel_loss(y, held.audio)), 4)
        if asr is not None:
            subsets = {"all": None, "cb0_1": [0, 1]}
            waves: dict = {k: [] for k in subsets}
            for r in utts:
                x = torch.from_numpy(np.asarray(r["audio"], dtype=np.float32))
                for k, y in zip(subsets, codec.resynthesize(x, list(subsets.values()))):
                    waves[k].append((y.float().numpy(), r["sample_rate"]))
            for k in subsets:
                row[f"wer_{k}"] = round(error_rates(refs, asr.transcribe(waves[k])).wer, 3)
        # held-out distillation (1 - cosine to the standardised teachers), as train/heldout.py
        out = heads(q)
        llm, wavlm = heads.targets(held.llm, held.wavlm)
        row["distill_llm"] = round(float(masked_cosine_loss(out.llm, llm, held.llm_mask & held.frame_mask)), 4)
        row["distill_wavlm"] = round(float(masked_cosine_loss(out.wavlm, wavlm, held.frame_mask)), 4)
        ppl = batch_perplexity(codes, held.frame_mask, p.codebooks.size)
        row.update({k.split("/")[-1]: round(float(v), 1) for k, v in ppl.items()})
        codec.train()
        return row

    history, t0, c0, eval_wall, eval_cpu = [], time.time(), time.process_time(), 0.0, 0.0
    for step in range(a.steps + 1):
        spent = (time.process_time() - c0 - eval_cpu) / 60
        last = step == a.steps or (a.cpu_minutes > 0 and spent >= a.cpu_minutes)
        if step % a.every == 0 or last:
            e0, ec0 = time.time(), time.process_time()
            row = evaluate(step)
            eval_wall += time.time() - e0
            eval_cpu += time.process_time() - ec0
            row["seconds"] = round(time.time() - t0)
            row["train_seconds"] = round(time.time() - t0 - eval_wall)  # wall, evaluations excluded
            row["train_cpu_seconds"] = round(time.process_time() - c0 - eval_cpu)
            history.append(row)
            print(a.tag, json.dumps(row), flush=True)
        if last:
            break
        batch = collate([train[k] for k in sampler.batch(step)])
        _, losses, _ = module.generator_losses(batch, step, torch.Generator().manual_seed(step))
        total = sum(p.train.lambdas[k] * v for k, v in losses.items())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, p.train.grad_clip or float("inf"))
        opt.step()
    if asr is not None:
        asr.close()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.tag}.json").write_text(json.dumps(history, indent=1) + "\n")
    plot(history, out / f"{a.tag}.png")


if __name__ == "__main__":
    main()
