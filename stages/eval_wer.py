"""DVC stage ``eval_wer``: ASR WER/CER on original audio, all codebooks, CB0+1 and CB0.

    python stages/eval_wer.py --corpus data/prepared/corpus --codec models/codec.pt \
        --metrics metrics/wer.json --plot plots/eval/wer.csv
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/wer.json")
    parser.add_argument("--plot", default="plots/eval/wer.csv")


def run(params, args):
    from semantic_bridge.evaluate.wer import run_wer

    write_json(args.metrics, run_wer(params.eval.wer, params.scale, args.corpus, args.codec, args.plot))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
