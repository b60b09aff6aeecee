"""msclap's HTSAT audio encoder: the CLAP 2023 configuration (33 M parameters), or a smaller
Swin shape for the random-weight embedded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

HTSAT_RATE = 44100
HTSAT_SECONDS = 7  # msclap 2023 config "duration"
SHAPE_FILE = "htsat_shape.json"  # beside the checkpoint; absent: the CLAP 2023 shape
SHAPE_KEYS = ("embed_dim", "depths", "num_heads")
CLAP_2023 = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [4, 8, 16, 32]}


def htsat_dim(shape: Optional[dict[str, Any]] = None) -> int:
    """Width of HTSAT's token grid and clip vector: embed_dim doubled at each of its merges."""
    s = shape or CLAP_2023
    return int(s["embed_dim"] * 2 ** (len(s["depths"]) - 1))


def build_htsat(shape: Optional[dict[str, Any]] = None):
    """msclap's ``AudioEncoder`` with HTSAT and the CLAP 2023 values (random weights). With
    ``shape`` ({embed_dim, depths, num_heads}), its Swin transformer is built at that size
    instead; the front end (7 s at 44.1 kHz, 64 mel bins, the 256 x 256 spectrogram image) and so
    the token grid's time resolution stay msclap's."""
    from msclap.models import config as htsat_config
    from msclap.models.clap import AudioEncoder
    from msclap.models.htsat import HTSAT_Swin_Transformer

    encoder = AudioEncoder("HTSAT", d_in=htsat_dim(shape), d_out=1024, sample_rate=HTSAT_RATE,
                           window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=8000,
                           classes_num=527)
    if shape is not None:
        encoder.base.htsat = HTSAT_Swin_Transformer(config=htsat_config, **{k: shape[k] for k in SHAPE_KEYS})
    return encoder


def read_shape(folder: str | Path) -> Optional[dict[str, Any]]:
    """The Swin shape a checkpoint folder declares in ``htsat_shape.json`` (plain JSON), or None
    (msclap's released checkpoints come without one: the CLAP 2023 shape)."""
    path = Path(folder) / SHAPE_FILE
    if not path.is_file():
        return None
    shape = json.loads(path.read_text())
    missing = [k for k in SHAPE_KEYS if k not in shape]
    if missing or len(shape["depths"]) != len(shape["num_heads"]):
        raise ValueError(f"{path}: needs {', '.join(SHAPE_KEYS)} with one head count per stage, got {shape}")
    return {k: shape[k] for k in SHAPE_KEYS}
