"""What every stage script shares: argument parsing, logging, one-line errors, metrics files."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from semantic_bridge.config import ConfigError, Params, load_params
from semantic_bridge.data.audio import AudioError
from semantic_bridge.data.evalsets import EvalSetError
from semantic_bridge.data.sources import SourceError
from semantic_bridge.frames import FrameError

# errors that mean "your input is wrong", reported as one line (no traceback)
USER_ERRORS = (ConfigError, SourceError, EvalSetError, AudioError, FrameError, FileNotFoundError)


def stage_main(description: str, run: Callable[[Params, argparse.Namespace], None],
               add_args: Callable[[argparse.ArgumentParser], None] | None = None,
               errors: tuple[type[Exception], ...] = ()) -> None:
    """Parse ``--params`` (+ stage arguments), load and validate params, call ``run``.

    Exits 2 with one ``error:`` line on a user error (``USER_ERRORS`` and the stage's own
    ``errors``), before or during the work.
    """
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
    except USER_ERRORS + tuple(errors) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as pretty JSON, atomically (tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
