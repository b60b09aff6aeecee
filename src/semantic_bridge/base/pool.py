"""A pool of worker processes for CPU-bound work that does not release the GIL (pocketsphinx
alignment and recognition)."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any, Callable, Optional, Sequence


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


class WorkerPool:
    """``map(fn, jobs)`` in ``workers`` processes, in order; in this process when ``workers``
    is 1. Workers are spawned, not forked: forking a process whose torch/OpenMP threads are
    running can deadlock. ``initializer(*initargs)`` runs once per worker (and here, for the
    in-process case)."""

    def __init__(self, workers: int, initializer: Optional[Callable[..., None]] = None,
                 initargs: Sequence[Any] = ()) -> None:
        self.workers = max(1, workers)
        if initializer is not None:
            initializer(*initargs)
        self._pool = (mp.get_context("spawn").Pool(self.workers, initializer, tuple(initargs))
                      if self.workers > 1 else None)

    def map(self, fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
        if self._pool is None:
            return [fn(job) for job in jobs]
        return self._pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * self.workers)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
