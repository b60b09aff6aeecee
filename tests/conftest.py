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
SPEECH = REPO / "tests" / "fixtures" / "real_speech"  # real human speech clips (their README)


def shrink(raw: dict) -> dict:
    """The committed params with a corpus and a training run small enough for a unit test."""
    raw = copy.deepcopy(raw)
    d = raw["data"]
    d["splits"] = {"valid_speakers": 1, "test_speakers": 3, "dev_speakers": 1}
    d["synthetic"]["n_speakers"] = 8
    d["synthetic"]["utterances_per_speaker"] = 3
    d["trials"]["per_class"] = 6
    d["qa"]["train_questions"] = 14
    d["qa"]["test_questions"] = 7
    d["max_shard_size"] = "1MB"
    raw["train"].update(steps=4, batch_size=2, segment_seconds=0.8, adversarial_start=2,
                        checkpoint_every=2, log_every=1, eval_utterances=4)
    e = raw["eval"]
    e["wer"]["max_utterances"] = 3
    e["swap"].update(pairs=3, save_wavs=1)
    e["edit"].update(edits=3, save_wavs=1)
    e["reasoning"].update(steps=3, batch_size=4)
    e["probe"].update(steps=5, batch_size=4)
    e["quality"].update(utterances=2, save_wavs=1)
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


def tiny_nemo_frontend(kernel: int, stride: int) -> dict:
    """Config of a tiny NeMo front end (16 kHz mel features -> one conv block, 48 channels),
    shared by the tiny .nemo models the tests build (CTC ASR, speaker)."""
    return {
        "sample_rate": 16000,
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "sample_rate": 16000, "window_size": 0.025, "window_stride": 0.01,
                         "features": 32, "n_fft": 512, "dither": 0.0, "pad_to": 0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 32,
                    "activation": "relu", "conv_mask": True,
                    "jasper": [{"filters": 48, "repeat": 1, "kernel": [kernel], "stride": [stride],
                                "dilation": [1], "dropout": 0.0, "residual": False, "separable": False}]},
    }


def tone(seconds: float, rate: int, freq: float = 220.0, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    """A voiced-looking test signal ``[N]`` or ``[N, channels]``."""
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def write_wav(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype)
    return path


# the random-weight tiny teachers of the unit tests: WavLM-Large's and Qwen2.5-1.5B's depth
# (24 and 28 blocks, so every paper-scale layer index is valid), 64 wide
TINY_WAVLM = {"dim": 64, "layer": 6}
TINY_LLM = {"dim": 64, "layer": 27}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, raw_params) -> dict[str, Path]:
    """The embedded random-weight teachers, built once, saved and loaded back by path."""
    from semantic_bridge.models.embedded import build_tiny_qwen, build_tiny_wavlm

    root = tmp_path_factory.mktemp("models")
    return {"wavlm": build_tiny_wavlm(root / "tiny-wavlm", TINY_WAVLM["dim"], raw_params["seed"]),
            "qwen": build_tiny_qwen(root / "tiny-qwen", TINY_LLM["dim"], raw_params["seed"])}


@pytest.fixture(scope="session")
def factory_raw(raw_params, tiny_models) -> dict:
    """Shrunk params whose teachers point at the session's tiny models."""
    raw = shrink(raw_params)
    raw["teachers"]["wavlm"].update(model=str(tiny_models["wavlm"]), **TINY_WAVLM)
    raw["teachers"]["llm"].update(model=str(tiny_models["qwen"]), **TINY_LLM)
    return raw


@pytest.fixture(scope="session")
def prepared_tiny(tmp_path_factory, factory_raw) -> Path:
    """A shrunk embedded corpus (8 speakers x 3 utterances), prepared once per session."""
    from semantic_bridge.corpus.prepare import run_prepare

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    p = params_from_dict(factory_raw)
    run_prepare(p.data, p.seed, out)
    return out
