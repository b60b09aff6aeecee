"""DVC stage ``merge``: one sharded dataset of training tuples per split.

    python stages/merge.py --corpus data/prepared/corpus --aligned data/aligned \
        --wavlm data/wavlm --qwen data/qwen --out data/merged --metrics metrics/merge.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus")
    parser.add_argument("--aligned", default="data/aligned")
    parser.add_argument("--wavlm", default="data/wavlm")
    parser.add_argument("--qwen", default="data/qwen")
    parser.add_argument("--out", default="data/merged")
    parser.add_argument("--metrics", default="metrics/merge.json")


def run(params, args):
    from semantic_bridge.merge.join import run_merge

    result = run_merge(args.corpus, args.aligned, args.wavlm, args.qwen, args.out,
                       params.data.max_shard_size)
    write_json(args.metrics, result.metrics(params.scale))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
