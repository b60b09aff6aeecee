"""DVC stage ``check_params``: validate the whole params file before any other stage runs.

Every stage depends on its output, and it depends on every key of params.yaml, so a bad value
or a misspelled section stops ``dvc repro`` here, with one line naming the key -- before DVC
removes any other stage's outputs (the git-tracked metrics and plots among them), and without
importing torch.

    python stages/check_params.py --out data/params.ok
"""

from semantic_bridge.base.files import write_text
from semantic_bridge.base.stage import stage_main


def add_args(parser):
    parser.add_argument("--out", default="data/params.ok", help="written when the params are valid")


def run(params, args):
    # constant content: a valid edit re-runs this stage but never the stages that depend on it
    write_text(args.out, "params.yaml is valid\n")


if __name__ == "__main__":
    stage_main(__doc__.splitlines()[0], run, add_args)
