"""DVC stage ``train``: the Semantic Bridge codec (Lightning; DDP when train.devices > 1).

    python stages/train.py --data data/merged --out models/codec.pt \
        --metrics metrics/train.json --plots plots/train
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--data", default="data/merged")
    parser.add_argument("--out", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--plots", default="plots/train")


def run(params, args):
    from semantic_bridge.train.run import run_train

    metrics = run_train(params, args.data, args.out, args.plots)
    if metrics:  # global rank 0 only
        write_json(args.metrics, {"scale": params.scale, "init_from": params.codec.init_from,
                                  **metrics})


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
