"""DVC stage ``prepare``: corpus source -> 24 kHz mono sharded datasets, trial list, QA set.

    python stages/prepare.py --out data/prepared --metrics metrics/prepare.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--out", default="data/prepared", help="output directory")
    parser.add_argument("--metrics", default="metrics/prepare.json", help="metrics JSON")


def run(params, args):
    from semantic_bridge.corpus.prepare import run_prepare

    result = run_prepare(params.data, params.seed, args.out)
    write_json(args.metrics, result.metrics(params.scale, params.data))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
