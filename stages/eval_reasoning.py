"""DVC stage ``eval_reasoning@<encoder>``: audio QA with a frozen encoder -> mapper -> frozen LM.

    python stages/eval_reasoning.py --encoder bridge --prepared data/prepared \
        --metrics metrics/reasoning/bridge.json --plot plots/reasoning/bridge.tsv
"""

from semantic_bridge.base.files import write_json
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--encoder", required=True, help="a key of eval.reasoning.encoders")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plot", required=True, help="training loss curve (TSV)")


def run(params, args):
    from semantic_bridge.evaluate.reasoning import run_reasoning

    write_json(args.metrics, run_reasoning(params.eval.reasoning, params.scale, params.seed,
                                           params.data.sample_rate, args.encoder, args.prepared,
                                           args.plot))


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
