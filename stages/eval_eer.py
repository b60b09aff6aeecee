"""DVC stage ``eval_eer``: speaker verification EER/minDCF from codec embeddings.

    python stages/eval_eer.py --prepared data/prepared --codec models/codec.pt \
        --metrics metrics/eer.json --plots plots/eval
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/eer.json")
    parser.add_argument("--plots", default="plots/eval", help="writes eer.csv and det/<source>.png")


def run(params, args):
    from semantic_bridge.evaluate.eer import run_eer

    write_json(args.metrics, run_eer(params.eval.eer, params.scale, params.seed, args.prepared,
                                     args.codec, args.plots))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
