"""What every stage script shares: argument parsing, logging, params, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from typing import Callable

from ..config import Params, load_params
from .errors import UserError


# Where float results depend on the CPU, pin what can be pinned (README "Reproducibility"):
# torch's own kernels, MKL's and oneDNN's code paths to AVX2 (on any x86-64 CPU with AVX2,
# AVX-512 ones included, the same kernels run; measured no slower here), deterministic cuBLAS.
X86_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_numerics(cpu_threads: int) -> None:
    """Fix what makes float results machine-dependent, before torch is imported: the kernels'
    instruction set (x86-64) and the number of CPU threads (summation order), the same for
    OpenMP and MKL. A value already in the environment wins, so ``OMP_NUM_THREADS=8 dvc repro``
    still does what it says."""
    pins = dict(X86_PINS) if platform.machine().lower() in ("x86_64", "amd64") else {}
    pins["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    for key, value in pins.items():
        os.environ.setdefault(key, value)
    threads = os.environ.setdefault("OMP_NUM_THREADS", str(cpu_threads))
    os.environ.setdefault("MKL_NUM_THREADS", threads)


def stage_main(description: str, run: Callable[[Params, argparse.Namespace], None],
               add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Parse ``--params`` (+ the stage's arguments), load and validate the whole params file,
    pin the numerics (``pin_numerics``), then call ``run``. A ``UserError``, before or during the
    work, is one ``error:`` line on stderr and exit status 2; anything else is a bug and keeps
    its traceback. Stage scripts import their runner inside ``run``: a params error costs no
    torch import."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        pin_numerics(params.cpu_threads)
        run(params, args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
