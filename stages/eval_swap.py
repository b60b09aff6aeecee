"""DVC stage ``eval_swap``: voice swap (A's first k codebooks + B's others), one row per k: WER and speaker similarity.

    python stages/eval_swap.py --corpus data/prepared/corpus --codec models/codec.pt \
        --wavs data/eval/swap --metrics metrics/swap.json --plot plots/eval/swap.csv
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--wavs", default="data/eval/swap", help="a few swapped pairs as wav files")
    parser.add_argument("--metrics", default="metrics/swap.json")
    parser.add_argument("--plot", default="plots/eval/swap.csv", help="the table as CSV, one row per setting")


def run(params, args):
    from semantic_bridge.evaluate.swap import run_swap

    write_json(args.metrics, run_swap(params.eval.swap, params.eval.wer, params.scale, params.seed,
                                      args.corpus, args.codec, args.wavs, args.plot))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
