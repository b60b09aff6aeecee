"""DVC stage ``eval_probe``: next-word prediction from CB0, CB1 and CB2..8 tokens.

    python stages/eval_probe.py --merged data/merged --codec models/codec.pt --metrics metrics/probe.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--merged", default="data/merged")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/probe.json")


def run(params, args):
    from semantic_bridge.evaluate.probe import run_probe

    write_json(args.metrics, run_probe(params.eval.probe, params.scale, params.seed, args.merged,
                                       args.codec))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
