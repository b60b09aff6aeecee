"""Shared fixtures: the real params.yaml, shrunk to seconds-scale runs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from semantic_bridge.config import Params, params_from_dict

REPO = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    """The committed params with a corpus small enough for a unit test."""
    raw = copy.deepcopy(raw)
    d = raw["data"]
    d["splits"] = {"valid_speakers": 1, "test_speakers": 3, "dev_speakers": 1}
    d["synthetic"]["n_speakers"] = 8
    d["synthetic"]["utterances_per_speaker"] = 3
    d["trials"]["per_class"] = 6
    d["qa"]["train_questions"] = 14
    d["qa"]["test_questions"] = 7
    d["max_shard_size"] = "1MB"
    return raw


@pytest.fixture(scope="session")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture()
def tiny_raw(raw_params) -> dict:
    return shrink(raw_params)


@pytest.fixture()
def tiny_params(tiny_raw) -> Params:
    return params_from_dict(tiny_raw, "tiny")


def tone(seconds: float, rate: int, freq: float = 220.0, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    """A voiced-looking test signal ``[N]`` or ``[N, channels]``."""
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def write_wav(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype)
    return path
