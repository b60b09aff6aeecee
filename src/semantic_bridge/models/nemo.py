"""Loading NeMo models by name or ``.nemo`` path (alignment, ASR, speaker embeddings)."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

from semantic_bridge.base.errors import ConfigError, MissingFile


class NemoModel:
    """A restored NeMo model; keep this object alive while the model is used (it may own the
    folder a ``.nemo`` archive was unpacked into).

    ``key`` names the params entry in error messages (``align.nemo_model``)."""

    def __init__(self, model: str, model_class: Any, device: Any, key: str) -> None:
        self._unpacked = None
        if model.endswith(".nemo"):
            if not Path(model).is_file():
                raise MissingFile(f"{key}: {model} not found")
            self.model = model_class.restore_from(model, map_location=device,
                                                  save_restore_connector=self._connector(model, key))
        else:
            self.model = model_class.from_pretrained(model, map_location=device)
        self.model.eval()

    def _connector(self, path: str, key: str):
        """NeMo 3.0 unpacks ``.nemo`` archives with tarfile's extraction filters, which
        Python < 3.11.4 lacks (Debian 12 ships 3.11.2). There, unpack it here (every member
        checked to stay inside the folder, no links) and hand NeMo the folder."""
        from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

        connector = SaveRestoreConnector()
        if hasattr(tarfile, "data_filter"):
            return connector
        self._unpacked = tempfile.TemporaryDirectory(prefix="nemo-")
        root = Path(self._unpacked.name).resolve()
        with tarfile.open(path, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                inside = (root / member.name).resolve().is_relative_to(root)
                if not inside or member.issym() or member.islnk() or member.isdev():
                    raise ConfigError(f"{key}: {path}: unsafe archive member {member.name!r}")
            tar.extractall(root, members=members)
        connector.model_extracted_dir = str(root)
        return connector
