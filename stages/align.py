"""DVC stage ``align``: word start/end times for the training splits (backend from params).

    python stages/align.py --corpus data/prepared/corpus --out data/aligned --metrics metrics/align.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus", help="prepared corpus")
    parser.add_argument("--out", default="data/aligned", help="output directory")
    parser.add_argument("--metrics", default="metrics/align.json", help="metrics JSON")


def run(params, args):
    from semantic_bridge.align.run import run_align

    result = run_align(params.align, args.corpus, args.out, params.data.max_shard_size)
    write_json(args.metrics, result.metrics(params.scale, params.align))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
