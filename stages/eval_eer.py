"""DVC stage ``eval_eer``: speaker verification EER/minDCF from codec embeddings.

    python stages/eval_eer.py --prepared data/prepared --codec models/codec.pt \
        --metrics metrics/eer.json --plots plots/eval
"""

from semantic_bridge.evaluate.common import EvalDataError
from semantic_bridge.evaluate.eer import run_eer
from semantic_bridge.stage import stage_main, write_json


def add_args(parser):
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/eer.json")
    parser.add_argument("--plots", default="plots/eval", help="writes eer.csv and det/<source>.png")


def run(params, args):
    write_json(args.metrics, run_eer(params, args.prepared, args.codec, args.plots))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args, errors=(EvalDataError,))
