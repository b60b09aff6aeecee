"""What the decoder takes from each codebook level, on a trained checkpoint: per level the mean
per-frame norm of its decoder input (the level's dequantized vector in latent space), the latent's
own norm and the quantization error |latent - sum of levels|, the weight norm of the semantic and
the acoustic RVQ's output projection, and the train stage's held-out mel
loss decoding CB0, CB0+1, all levels, CB2..8 alone and the unquantized latent.

A diagnostic for the README's finding that levels 2-8 add nothing yet::

    python benchmarks/level_contributions.py --codec models/codec.pt --utterances 24

Prints one JSON object (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from semantic_bridge.config import load_params
from semantic_bridge.evaluate.common import iter_split, load_codec
from semantic_bridge.train.losses import MultiScaleMelLoss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--codec", default="models/codec.pt")
    ap.add_argument("--corpus", default="data/prepared/corpus")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--utterances", type=int, default=24)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    p = load_params(a.params)
    loaded = load_codec(a.codec, torch.device("cpu"))
    codec = loaded.codec.eval()
    q = codec.quantizer
    n, n_sem = q.n_levels, q.n_semantic
    mel = MultiScaleMelLoss(codec.sample_rate, p.train.mel.windows, p.train.mel.n_mels)
    subsets = {"cb0": [0], "cb0_1": list(range(n_sem)), "all": list(range(n)),
               "cb2_8": list(range(n_sem, n))}
    norms, latent_norm, error_norm = [], [], []
    losses: dict[str, list[float]] = {k: [] for k in [*subsets, "latent"]}
    rows = iter_split(a.corpus, a.split, ["audio", "sample_rate"], a.utterances)
    with torch.no_grad():
        for row in rows:
            if row["sample_rate"] != codec.sample_rate:
                raise SystemExit(f"{a.corpus}/{a.split}: sample rate {row['sample_rate']}, "
                                 f"codec {codec.sample_rate}")
            x = torch.from_numpy(np.asarray(row["audio"], dtype=np.float32))[None, None]
            latent = codec.encode_latent(x)
            codes = q(latent).codes
            levels = torch.stack([q.dequantize(codes, [k]) for k in range(n)], 1)  # [1, K, D, T]
            norms.append(levels.norm(dim=2).mean(-1)[0])
            latent_norm.append(float(latent.norm(dim=1).mean()))
            error_norm.append(float((latent - levels.sum(1)).norm(dim=1).mean()))
            for name, ks in subsets.items():
                y = codec.decode(codes, ks)[..., : x.shape[-1]]
                losses[name].append(float(mel(y, x[..., : y.shape[-1]])))
            y = codec.decode_latent(latent)[..., : x.shape[-1]]
            losses["latent"].append(float(mel(y, x[..., : y.shape[-1]])))
    if not norms:
        raise SystemExit(f"{a.corpus}/{a.split}: no utterances")
    result = {
        "checkpoint": loaded.info(), "utterances": len(norms),
        "level_norm": {f"cb{k}": round(float(v), 3) for k, v in enumerate(torch.stack(norms).mean(0))},
        "latent_norm": round(float(np.mean(latent_norm)), 3),
        "quantization_error_norm": round(float(np.mean(error_norm)), 3),
        "mel_loss": {k: round(float(np.mean(v)), 4) for k, v in losses.items()},
        "output_proj_weight_norm": {"semantic": round(float(q.semantic.output_proj.weight.detach().norm()), 3),
                                    "acoustic": round(float(q.acoustic.output_proj.weight.detach().norm()), 3)},
    }
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
