"""DVC stage ``embedded_models``: random-weight tiny stand-ins for the pretrained models of the
embedded scale -- WavLM, Qwen2 (+ tokenizer), SmolLM2 (+ tokenizer), kyutai Mimi, msclap HTSAT --
saved where the params point by default.

    python stages/embedded_models.py --out models
"""

from pathlib import Path

from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--out", default="models", help="output directory")


def run(params, args):
    from semantic_bridge.models.embedded import (build_tiny_htsat, build_tiny_mimi, build_tiny_qwen,
                                                 build_tiny_smollm2, build_tiny_wavlm)

    out = Path(args.out)
    build_tiny_wavlm(out / "tiny-wavlm", params.teachers.wavlm.dim, params.seed)
    build_tiny_qwen(out / "tiny-qwen", params.teachers.llm.dim, params.seed)
    build_tiny_smollm2(out / "tiny-smollm2", params.seed)
    build_tiny_mimi(out / "tiny-mimi", params.seed)
    build_tiny_htsat(out / "tiny-htsat", params.seed)


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
