"""DVC stage ``qwen``: causal-LM hidden states on the frame grid (causal token -> frame rule).

Data parallel with torchrun (one process per GPU); resumes finished shards after a kill.

    torchrun --standalone --nproc_per_node 1 stages/qwen.py \
        --aligned data/aligned --out data/qwen --metrics metrics/qwen.json
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--aligned", default="data/aligned", help="align stage output")
    parser.add_argument("--out", default="data/qwen", help="output directory")
    parser.add_argument("--metrics", default="metrics/qwen.json", help="metrics JSON")


def run(params, args):
    from semantic_bridge.teachers.run import run_llm

    metrics = run_llm(params.teachers.llm, params.scale, args.aligned, args.out,
                      params.data.max_shard_size)
    if metrics is not None:  # rank 0
        write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
