"""DVC stage ``wavlm``: WavLM hidden states, 50 -> 12.5 Hz, float16, per utterance.

Data parallel with torchrun (one process per GPU); resumes finished shards after a kill.

    torchrun --standalone --nproc_per_node 1 stages/wavlm.py \
        --corpus data/prepared/corpus --out data/wavlm --metrics metrics/wavlm.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--corpus", default="data/prepared/corpus", help="prepared corpus")
    parser.add_argument("--out", default="data/wavlm", help="output directory")
    parser.add_argument("--metrics", default="metrics/wavlm.json", help="metrics JSON")


def run(params, args):
    from semantic_bridge.teachers.run import run_wavlm

    metrics = run_wavlm(params.teachers.wavlm, params.scale, args.corpus, args.out,
                        params.data.max_shard_size)
    if metrics is not None:  # rank 0
        write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
