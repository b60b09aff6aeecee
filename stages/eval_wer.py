"""DVC stage ``eval_wer``: ASR WER/CER on original audio, all codebooks, CB0+1 and CB0.

    python stages/eval_wer.py --corpus data/prepared/corpus --codec models/codec.pt \
        --metrics metrics/wer.json --plot plots/eval/wer.csv
"""

from semantic_bridge.evaluate.common import EvalDataError
from semantic_bridge.evaluate.wer import run_wer
from semantic_bridge.stage import stage_main, write_json


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--metrics", default="metrics/wer.json")
    parser.add_argument("--plot", default="plots/eval/wer.csv")


def run(params, args):
    write_json(args.metrics, run_wer(params, args.corpus, args.codec, args.plot))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args, errors=(EvalDataError,))
