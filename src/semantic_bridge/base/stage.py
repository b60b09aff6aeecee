"""What every stage script shares: argument parsing, logging, params, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from ..config import Params, load_params
from .errors import UserError


def stage_main(description: str, run: Callable[[Params, argparse.Namespace], None],
               add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Parse ``--params`` (+ the stage's arguments), load and validate the whole params file,
    then call ``run``. A ``UserError``, before or during the work, is one ``error:`` line on
    stderr and exit status 2; anything else is a bug and keeps its traceback."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        run(params, args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
