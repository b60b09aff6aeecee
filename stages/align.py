"""DVC stage ``align``: word start/end times for the training splits (backend from params).

    python stages/align.py --corpus data/prepared/corpus --out data/aligned --metrics metrics/align.json
"""

from semantic_bridge.data.align import run_align
from semantic_bridge.stage import stage_main, write_json


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus", help="prepared corpus")
    parser.add_argument("--out", default="data/aligned", help="output directory")
    parser.add_argument("--metrics", default="metrics/align.json", help="metrics JSON")


def run(params, args):
    result = run_align(params, args.corpus, args.out)
    write_json(args.metrics, result.metrics(params))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
