"""The errors a user can act on.

Every error the user must fix (a params value, a missing input, data that cannot be used)
is a ``UserError``: stage scripts print its message as one ``error:`` line and exit 2, with
no traceback. Anything else is a bug and keeps its traceback.

``Skip`` is the one per-row outcome: an input row that cannot be used, counted under its
``reason`` in the stage's metrics. Readers raise it; stages that stream rows also yield it in
place of an output row.
"""

from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """Input the user must fix; the message is one line naming the file, key or row."""


class ConfigError(UserError, ValueError):
    """A params file that cannot be used; the message names the file and the key."""


class DataError(UserError, ValueError):
    """Input data that cannot be used as a whole (a missing split or column, a malformed
    evaluation list, nothing left to score)."""


class MissingFile(UserError, FileNotFoundError):
    """A path named by params or by an upstream stage that does not exist."""


class Skip(UserError):
    """One input row that cannot be used: counted under ``reason`` (a stable metrics key).

    ``id`` and ``speaker`` say which row, where the raiser knows it."""

    def __init__(self, reason: str, detail: str = "", id: Optional[str] = None,
                 speaker: Optional[str] = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.id, self.speaker = reason, detail, id, speaker
