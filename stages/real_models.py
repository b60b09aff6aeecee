"""DVC stage ``real_models``: the real pretrained weights that ship offline (``make setup`` fetches
and checks them, ``models/weights.py``), in the formats the stages load by path -- Whisper
tiny.en as a transformers model (its encoder is the embedded speech teacher) and
SmolLM2-135M-Instruct de-quantised once from GGUF to safetensors (the embedded LLM teacher and
the frozen reasoning LM).

    python stages/real_models.py --out models
"""

from pathlib import Path

from semantic_bridge.base.files import staged_output
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--out", default="models", help="output directory")


def run(params, args):
    from semantic_bridge.models.gguf import convert_gguf_causal_lm
    from semantic_bridge.models.weights import model_dir
    from semantic_bridge.models.whisper import convert_ct2_whisper

    out = Path(args.out)
    whisper, smollm2 = model_dir("whisper-tiny.en"), model_dir("smollm2-135m-instruct-gguf")
    with staged_output(out / "whisper-tiny.en") as tmp:
        convert_ct2_whisper(whisper, tmp)
    with staged_output(out / "smollm2-135m") as tmp:
        convert_gguf_causal_lm(next(smollm2.glob("*.gguf")), tmp)


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
