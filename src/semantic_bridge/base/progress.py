"""Progress of long work that a person can follow.

On a terminal: a tqdm bar. Elsewhere (CI logs, files): one log line at most every
``every_s`` seconds (and at the end) with the count, the rate and the time left, so a log
neither floods nor goes silent for minutes.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable, Iterator, Optional, TypeVar

log = logging.getLogger("semantic_bridge.progress")
T = TypeVar("T")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts work done; ``update(n, **status)`` after each piece (``status``: e.g. a loss)."""

    def __init__(self, desc: str, total: Optional[int] = None, unit: str = "it",
                 every_s: float = 30.0, initial: int = 0) -> None:
        self.desc, self.total, self.unit, self.every_s = desc, total, unit, every_s
        self.n = self.start_n = initial
        self.start = self.last = time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        self.interactive = self._bar is not None

    def update(self, n: int = 1, **status: Any) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if status:
                self._bar.set_postfix({k: _fmt(v) for k, v in status.items()}, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s or (self.total is not None and self.n >= self.total):
            self.last = now
            log.info("%s", self.line(now, status))

    def line(self, now: float, status: dict[str, Any]) -> str:
        done = self.n - self.start_n
        rate = done / max(now - self.start, 1e-9)
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total is not None else "")
                 + f" {self.unit}", f"{rate:.2f} {self.unit}/s", f"elapsed {_duration(now - self.start)}"]
        if self.total is not None and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        parts += [f"{k} {_fmt(v)}" for k, v in status.items()]
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def track(items: Iterable[T], desc: str, total: Optional[int] = None, unit: str = "it",
          every_s: float = 30.0) -> Iterator[T]:
    """``items``, reporting progress as they are consumed."""
    progress = Progress(desc, total, unit, every_s)
    try:
        for item in items:
            yield item
            progress.update()
    finally:
        progress.close()
