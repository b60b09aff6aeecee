"""DVC stage ``embedded_models``: random-weight tiny stand-ins where no real weights ship offline
-- kyutai Mimi and msclap's HTSAT, the reference encoders of ``eval_reasoning`` -- saved where
the params point by default. Their numbers test machinery only (README).

    python stages/embedded_models.py --out models
"""

from pathlib import Path

from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--out", default="models", help="output directory")


def run(params, args):
    from semantic_bridge.models.embedded import build_tiny_htsat, build_tiny_mimi

    out = Path(args.out)
    build_tiny_mimi(out / "tiny-mimi", params.seed)
    build_tiny_htsat(out / "tiny-htsat", params.seed)


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
