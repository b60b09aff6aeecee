"""DVC stage ``eval_edit``: text-based audio editing through the codec, against a waveform-splice baseline.

    python stages/eval_edit.py --corpus data/prepared/corpus --aligned data/aligned \
        --codec models/codec.pt --wavs data/eval/edit --metrics metrics/edit.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--aligned", default="data/aligned", help="word alignments of every split")
    parser.add_argument("--codec", default="models/codec.pt")
    parser.add_argument("--wavs", default="data/eval/edit", help="a few edits as wav files")
    parser.add_argument("--metrics", default="metrics/edit.json")


def run(params, args):
    from semantic_bridge.evaluate.edit import run_edit

    e = params.eval
    write_json(args.metrics, run_edit(e.edit, e.wer, e.swap, params.scale, params.seed, args.corpus,
                                      args.aligned, args.codec, args.wavs))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
