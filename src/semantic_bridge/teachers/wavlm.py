"""WavLM (or any WavLM/HuBERT-family model) features at the codec's frame rate.

Per utterance of ``T`` codec frames: resample 24 kHz -> 16 kHz; zero-pad the end to
``4T * 320 + 80`` samples, so the 25 ms / 20 ms CNN yields exactly ``4T`` frames (the
codec also zero-pads its last, partial frame); take ``hidden_states[layer]``; average
each run of 4 frames (50 Hz -> 12.5 Hz). WavLM frame ``j`` is centred at
``20 j + 12.5`` ms, so frames ``4t .. 4t+3`` are exactly those centred inside codec frame
``t``. Output ``wavlm[T, D]`` float16.

Batches are length-sorted and hold at most ``batch_seconds`` of (padded) audio. Padding
cannot change results for models with a layer-norm CNN (WavLM-Large, HuBERT-Large:
``feat_extract_norm == "layer"``), which take an attention mask; group-norm models
(the *-base ones) normalise over the padded length, so they run one utterance at a time.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Iterator, Union

import numpy as np
import torch

from semantic_bridge.config import WavlmConfig
from semantic_bridge.base.audio import resample
from semantic_bridge.base import schemas
from semantic_bridge.base.errors import ConfigError, Skip
from semantic_bridge.teachers.extract import autocast
from semantic_bridge.teachers.layers import Teacher, select_layer
from semantic_bridge.base.frames import FRAME_RATE, FrameError, check_frames, n_frames

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 320  # 20 ms at 16 kHz
WINDOW = 400  # 25 ms
PER_FRAME = 4  # 50 Hz frames per 12.5 Hz frame


def padded_length(frames: int) -> int:
    """16 kHz samples that give exactly ``PER_FRAME * frames`` CNN frames."""
    return PER_FRAME * frames * HOP + (WINDOW - HOP)


def pool(hidden: np.ndarray | torch.Tensor, frames: int) -> torch.Tensor:
    """Mean of each run of 4 frames: ``[4T, D] -> [T, D]``."""
    hidden = torch.as_tensor(hidden)
    check_frames("wavlm (50 Hz)", hidden.shape[0], PER_FRAME * frames)
    return hidden.reshape(frames, PER_FRAME, -1).mean(dim=1)



class WavlmExtractor(Teacher):
    """The speech teacher: a WavLM/HuBERT-family model, or the encoder of a Whisper model
    (``model_type: whisper``), under the same 50 -> 12.5 Hz contract.

    Whisper: the audio is cut into consecutive windows of ``whisper_window_seconds`` (each
    zero-padded to the window, as Whisper pads to its 30 s); each window's log-mel features go
    through the encoder with its position table cut to the window (30 s: Whisper unchanged;
    shorter: the encoder's first positions, as whisper.cpp's ``audio_ctx`` does). A window's
    50 Hz frame ``j`` is centred at ``20 j`` ms (10 ms mel hop, stride-2 second conv) and a
    window is a whole number of codec frames, so frames ``4t .. 4t+3`` of the concatenated
    windows lie inside codec frame ``t``; the first ``4T`` are pooled. Frames near a window's
    end see no audio beyond it (only utterances longer than the window have such ends)."""

    name, section = "wavlm", "teachers.wavlm"
    input_columns = ["id", "audio", "sample_rate"]
    size_column = "seconds"

    def __init__(self, cfg: WavlmConfig, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.whisper = self.model.config.model_type == "whisper"
        self.padding_safe = self.whisper or getattr(self.model.config, "feat_extract_norm", "layer") == "layer"
        if not self.padding_safe:
            log.warning("%s has a group-norm CNN: padding would change its output, batching off", cfg.model)
        self.features = schemas.wavlm(cfg.dim)
        if self.whisper:
            self.window = round(cfg.whisper_window_seconds * SAMPLE_RATE)  # samples per window
            self._cut_positions(round(cfg.whisper_window_seconds * 50))

    def _cut_positions(self, n: int) -> None:
        """Keep the encoder's first ``n`` positions: it then reads ``n`` frames (2n mel frames)."""
        enc = self.model
        if n > enc.embed_positions.num_embeddings:
            raise ConfigError(f"{self.section}.whisper_window_seconds: {self.cfg.model} has "
                              f"{enc.embed_positions.num_embeddings} positions (50 per second)")
        if n < enc.embed_positions.num_embeddings:
            table = torch.nn.Embedding.from_pretrained(enc.embed_positions.weight[:n].clone(), freeze=True)
            enc.embed_positions = table.to(enc.embed_positions.weight.device)
            enc.config.max_source_positions = enc.max_source_positions = n

    def identity(self) -> dict[str, Any]:
        extra = {"whisper_window_seconds": self.cfg.whisper_window_seconds} if self.whisper else {}
        return {**super().identity(), **extra}

    def load_processor(self, name_or_path: str) -> None:
        from transformers import AutoFeatureExtractor

        self.feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path)
        if self.feature_extractor.sampling_rate != SAMPLE_RATE:
            raise ConfigError(f"{self.section}.model: {name_or_path} expects "
                              f"{self.feature_extractor.sampling_rate} Hz, not 16 kHz")

    def row_bytes(self, seconds: float) -> int:
        return int(np.ceil(seconds * FRAME_RATE)) * self.cfg.dim * 2 + 64

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into batches of similar length, at most ``batch_seconds`` padded."""
        if self.whisper:  # every input is computed as whole windows
            lengths = [-(-n // self.window) * self.window for n in lengths]
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        budget = self.cfg.batch_seconds * SAMPLE_RATE
        batches: list[list[int]] = []
        for i in order:
            batch = batches[-1] if batches else None
            fits = batch is not None and (len(batch) + 1) * lengths[i] <= budget
            if fits and (self.padding_safe or lengths[batch[0]] == lengths[i]):
                batch.append(i)
            else:
                batches.append([i])
        return batches

    @torch.inference_mode()
    def forward(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """``hidden_states[layer]`` for each 16 kHz wave: ``[F_i, D]`` float32 on CPU (Whisper:
        the frames of its whole windows)."""
        if self.whisper:
            chunks = [w[k : k + self.window] for w in waves for k in range(0, max(len(w), 1), self.window)]
            feats = self.feature_extractor(chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                           padding="max_length", max_length=self.window)
            with autocast(self.device):
                out = self.model(feats["input_features"].to(self.device), output_hidden_states=True)
            hidden = select_layer(out, self.cfg.layer).float().cpu()
            per_wave = [-(-max(len(w), 1) // self.window) for w in waves]
            return [torch.cat(list(h)) for h in hidden.split(per_wave)]
        inputs = self.feature_extractor(waves, sampling_rate=SAMPLE_RATE, padding=True,
                                        return_attention_mask=True, return_tensors="pt")
        mask = inputs["attention_mask"].to(self.device)
        with autocast(self.device), warnings.catch_warnings():
            # WavLM pairs a float position bias with a bool padding mask; torch warns that the
            # mix is deprecated. The result is right (tests: batched == one by one).
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            out = self.model(inputs["input_values"].to(self.device),
                             attention_mask=mask if self.padding_safe else None,
                             output_hidden_states=True)
        hidden = select_layer(out, self.cfg.layer).float().cpu()
        lengths = self.model._get_feat_extract_output_lengths(mask.sum(-1)).cpu()
        return [hidden[i, : int(lengths[i])] for i in range(len(waves))]

    def process(self, rows: list[dict[str, Any]]) -> Iterator[Union[dict[str, Any], Skip]]:
        waves, frames, todo = [], [], []
        results: list[Union[dict[str, Any], Skip, None]] = [None] * len(rows)
        for k, row in enumerate(rows):
            t = n_frames(len(row["audio"]), row["sample_rate"])
            n = PER_FRAME * t * HOP if self.whisper else padded_length(t)  # Whisper: no CNN overhang
            wave = resample(row["audio"], row["sample_rate"], SAMPLE_RATE)[:n]
            waves.append(np.pad(wave, (0, n - len(wave))))
            frames.append(t)
            todo.append(k)
        for batch in self._batches([len(w) for w in waves]):
            for j, hidden in zip(batch, self.forward([waves[j] for j in batch])):
                i, row_id = todo[j], rows[todo[j]]["id"]
                if self.whisper:
                    hidden = hidden[: PER_FRAME * frames[j]]
                try:
                    pooled = pool(hidden, frames[j])
                except FrameError as err:
                    results[i] = Skip("frames", str(err), id=row_id)
                    continue
                if not torch.isfinite(pooled).all():
                    results[i] = Skip("not_finite", "non-finite WavLM output", id=row_id)
                    continue
                results[i] = {"id": row_id, "n_frames": frames[j], "wavlm": pooled.half().numpy()}
        yield from results  # type: ignore[misc]
