"""DVC stage ``disentanglement``: one table of where content, prosody and timbre live, per
codebook group, from the evaluations' metrics (nothing recomputed), and its heat map.

    python stages/disentanglement.py --quality metrics/quality.json --eer metrics/eer.json \
        --probe metrics/probe.json --metrics metrics/disentanglement.json --plot plots/disentanglement.png
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--quality", default="metrics/quality.json")
    parser.add_argument("--eer", default="metrics/eer.json")
    parser.add_argument("--probe", default="metrics/probe.json")
    parser.add_argument("--metrics", default="metrics/disentanglement.json")
    parser.add_argument("--plot", default="plots/disentanglement.png")


def run(params, args):
    from semantic_bridge.evaluate.disentanglement import run_disentanglement

    write_json(args.metrics, run_disentanglement(params.scale, args.quality, args.eer, args.probe, args.plot))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
