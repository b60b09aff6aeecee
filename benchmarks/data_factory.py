"""Throughput and peak memory of the data-factory stages on N and 4N utterances.

Each stage runs as its real script in a child process; peak RSS is that process's
``ru_maxrss`` (from ``wait4``). Flat memory means the 4N column's RSS is about the N one.

    uv run python benchmarks/data_factory.py                 # embedded tiny teachers, N = 400
    uv run python benchmarks/data_factory.py --n 200 --paper-size   # WavLM-Large / Qwen2.5-1.5B
                                                             # sizes, random weights (use a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = {
    "prepare": ["stages/prepare.py", "--out", "{w}/prepared", "--metrics", "{w}/m/prepare.json"],
    "align": ["stages/align.py", "--corpus", "{w}/prepared/corpus", "--out", "{w}/aligned", "--metrics", "{w}/m/align.json"],
    "wavlm": ["stages/wavlm.py", "--corpus", "{w}/prepared/corpus", "--out", "{w}/wavlm", "--metrics", "{w}/m/wavlm.json"],
    "qwen": ["stages/qwen.py", "--aligned", "{w}/aligned", "--out", "{w}/qwen", "--metrics", "{w}/m/qwen.json"],
    "merge": ["stages/merge.py", "--corpus", "{w}/prepared/corpus", "--aligned", "{w}/aligned", "--wavlm",
              "{w}/wavlm", "--qwen", "{w}/qwen", "--out", "{w}/merged", "--metrics", "{w}/m/merge.json"],
}


PAPER_LAYERS = (6, 27)  # WavLM-Large layer 6, Qwen2.5-1.5B layer 27 (DESIGN)


def build_paper_size_models(root: Path, seed: int) -> tuple[Path, Path]:
    """Random-weight models with WavLM-Large's and Qwen2.5-1.5B's shapes (same compute)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    from semantic_bridge.corpus.sentences import generate_sentences
    from semantic_bridge.models.embedded import train_tokenizer

    torch.manual_seed(seed)
    wavlm = root / "wavlm-large-random"
    WavLMModel(WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                           conv_bias=False)).save_pretrained(wavlm)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(wavlm)
    qwen = root / "qwen2.5-1.5b-random"
    tokenizer = train_tokenizer(generate_sentences(4000, seed), 4096)  # vocab size does not change layer compute
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=1536, num_hidden_layers=28,
                                 num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
                                 max_position_embeddings=32768, tie_word_embeddings=True)).save_pretrained(qwen)
    tokenizer.save_pretrained(qwen)
    return wavlm, qwen


def build_teachers(models: Path, base: dict, paper_size: bool) -> tuple[Path, Path]:
    if paper_size:
        return build_paper_size_models(models, base["seed"])
    from semantic_bridge.models.embedded import build_tiny_qwen, build_tiny_wavlm

    t = base["teachers"]
    return (build_tiny_wavlm(models / "tiny-wavlm", t["wavlm"]["dim"], base["seed"]),
            build_tiny_qwen(models / "tiny-qwen", t["llm"]["dim"], base["seed"]))


def run_stage(name: str, work: Path, params: Path) -> dict[str, float]:
    args = [a.format(w=work) for a in STAGES[name]]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "LOGLEVEL": "WARNING"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / args[0]), "--params", str(params), *args[1:]],
                            cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{name} failed (status {status})")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400,
                        help="utterances in the small run (the large one has 4N); its train split is above the "
                             "256-row read-ahead window, so that flat memory shows")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--paper-size", action="store_true", help="WavLM-Large / Qwen2.5-1.5B shapes")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-factory-"))
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    # the models are built in a spawned child: a stage process's peak RSS (ru_maxrss, which Linux
    # carries over fork and exec) must not include this process's copy of them
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        wavlm, qwen = pool.apply(build_teachers, (root / "models", base, args.paper_size))
    base["teachers"]["wavlm"]["model"], base["teachers"]["llm"]["model"] = str(wavlm), str(qwen)
    if args.paper_size:
        base["teachers"]["wavlm"]["dim"], base["teachers"]["llm"]["dim"] = 1024, 1536
    # the paper's layers (params.yaml's embedded default reads Whisper tiny.en's 4 and SmolLM2's 29):
    # the stand-ins have WavLM-Large's 24 and Qwen2.5-1.5B's 28 layers
    base["teachers"]["wavlm"]["layer"], base["teachers"]["llm"]["layer"] = PAPER_LAYERS

    table = {}
    for n in (args.n, args.factor * args.n):
        speakers = 16
        base["data"]["splits"] = {"valid_speakers": 1, "test_speakers": 2, "dev_speakers": 1}
        base["data"]["synthetic"].update(n_speakers=speakers, utterances_per_speaker=-(-n // speakers))
        base["data"]["trials"]["per_class"] = 10
        base["data"]["qa"].update(train_questions=10, test_questions=5)
        work = root / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        params = work / "params.yaml"
        params.write_text(yaml.safe_dump(base))
        row = {}
        for name in STAGES:
            row[name] = run_stage(name, work, params)
        prepared = json.loads((work / "m/prepare.json").read_text())
        splits = [v for k, v in prepared["splits"].items() if k != "dev"]  # teachers skip dev
        utts = sum(v["utterances"] for v in splits)
        hours = sum(v["hours"] for v in splits)
        row["_utterances"], row["_audio_seconds"] = utts, hours * 3600
        table[n] = row

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"\ndata factory benchmark: {'paper-size random' if args.paper_size else 'embedded tiny'} teachers, {device}")
    print(f"{'stage':<8} {'utts':>6} {'audio s':>8} {'wall s':>8} {'utt/s':>8} {'audio s/s':>10} {'peak RSS MB':>12}")
    for n, row in table.items():
        for name in STAGES:
            r = row[name]
            print(f"{name:<8} {row['_utterances']:>6} {row['_audio_seconds']:>8.0f} {r['seconds']:>8.1f} "
                  f"{row['_utterances'] / r['seconds']:>8.1f} {row['_audio_seconds'] / r['seconds']:>10.1f} "
                  f"{r['peak_rss_mb']:>12.0f}")
    small, large = table[args.n], table[args.factor * args.n]
    print("\nmarginal throughput, (4N - N) work / (4N - N) wall time, start-up and model loading cancelled:")
    extra_utts = large["_utterances"] - small["_utterances"]
    extra_audio = large["_audio_seconds"] - small["_audio_seconds"]
    for name in STAGES:
        dt = max(large[name]["seconds"] - small[name]["seconds"], 1e-3)
        print(f"  {name:<8} {extra_utts / dt:>8.1f} utt/s {extra_audio / dt:>10.1f} audio s/s")
    print("\npeak RSS ratio (4N / N): " + ", ".join(
        f"{name} {large[name]['peak_rss_mb'] / small[name]['peak_rss_mb']:.2f}" for name in STAGES))
    print("wall time includes process start and model loading (seconds): compare the rows, not one alone")


if __name__ == "__main__":
    main()
