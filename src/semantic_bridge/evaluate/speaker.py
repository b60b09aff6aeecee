"""Speaker embeddings for eval_swap (and the reference row of eval_eer), chosen by
``eval.swap.speaker_backend``:

- ``campplus`` (embedded default): 3D-Speaker's CAM++ with its released weights (registry key
  ``campplus``, or a path to a state dict), 192-d, on 16 kHz Kaldi filterbanks.
- ``mfcc``: mean and standard deviation of 20 MFCCs over the voiced
  frames (energy above the utterance's median). No weights, so it runs offline; a classic
  weak speaker representation that does follow pitch and timbre, not a neural verifier.
- ``nemo``: a NeMo speaker model (``EncDecSpeakerLabelModel``, e.g. TitaNet-large) by name or
  ``.nemo`` path; its embedding of the whole utterance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import torch

from ..base.audio import resample
from ..base.device import default_device
from ..base.errors import MissingFile
from ..config import EvalSwapConfig

RATE = 16000


class SpeakerModel(Protocol):
    name: str
    model: Optional[str]

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


class MfccSpeaker:
    name = "mfcc"
    model = "mfcc-20 mean+std (no weights)"

    def __init__(self) -> None:
        import torchaudio

        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=RATE, n_mfcc=20,
            melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 40})

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``[40]``: mean and std of MFCC 1..20 (c0, the loudness, is left out) over voiced frames."""
        wave = torch.from_numpy(resample(audio, sample_rate, RATE))
        feats = self.mfcc(wave)  # [20, frames]
        energy = feats[0]
        voiced = feats[1:, energy >= energy.median()] if feats.shape[1] > 2 else feats[1:]
        return torch.cat([voiced.mean(1), voiced.std(1, unbiased=False)]).numpy()


class CamppSpeaker:
    name = "campplus"

    def __init__(self, model: str) -> None:
        from ..models.campplus import load_campplus
        from ..models.weights import resolve

        self.model = model
        path = Path(resolve(model))
        if path.is_dir():
            path = next(iter(sorted(path.glob("*.pt"))), path)
        if not path.is_file():
            raise MissingFile(f"eval.swap.speaker_model: {model} is neither a registry model nor a file")
        self.device = default_device()
        self.net = load_campplus(str(path)).to(self.device)

    @torch.inference_mode()
    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        from ..models.campplus import fbank

        feats = fbank(resample(audio, sample_rate, RATE))[None].to(self.device)
        return self.net(feats)[0].float().cpu().numpy()


class NemoSpeaker:
    name = "nemo"

    def __init__(self, model: str) -> None:
        from nemo.collections.asr.models import EncDecSpeakerLabelModel

        from ..models.nemo import NemoModel

        self.model = model
        self._loaded = NemoModel(model, EncDecSpeakerLabelModel, default_device(), "eval.swap.speaker_model")
        self.net = self._loaded.model
        cfg = self.net.cfg
        self.rate = int(cfg.get("sample_rate") or cfg.preprocessor.get("sample_rate", RATE))

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        emb, _ = self.net.infer_segment(resample(audio, sample_rate, self.rate))
        return emb[0].float().cpu().numpy()


def make_speaker_model(cfg: EvalSwapConfig) -> SpeakerModel:
    if cfg.speaker_backend == "mfcc":
        return MfccSpeaker()
    if cfg.speaker_backend == "campplus":
        return CamppSpeaker(str(cfg.speaker_model))
    return NemoSpeaker(str(cfg.speaker_model))
