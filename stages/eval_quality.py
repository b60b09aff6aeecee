"""DVC stage ``eval_quality``: the resynthesis quality suite for every cumulative codebook subset.

    python stages/eval_quality.py --corpus data/prepared/corpus --codec models/codec.pt \
        --wavs data/eval/quality --metrics metrics/quality.json --plots plots/quality
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--wavs", default="data/eval/quality", help="a few resyntheses per row")
    parser.add_argument("--metrics", default="metrics/quality.json")
    parser.add_argument("--plots", default="plots/quality", help="quality.csv and quality.png")


def run(params, args):
    from semantic_bridge.evaluate.quality import run_quality

    e = params.eval
    write_json(args.metrics, run_quality(e.quality, e.wer, e.swap.speaker_model, params.scale, args.corpus,
                                         args.codec, args.wavs, args.plots))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
