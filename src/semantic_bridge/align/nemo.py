"""CTC forced alignment with any NeMo CTC or hybrid CTC model (``align.nemo_model``: a name or
a ``.nemo`` path): the model's CTC log-probabilities, Viterbi with
``torchaudio.functional.forced_align``.

Confidence check: over the frames of the aligned words, the mean of (best label's log-prob -
the forced path's log-prob), in nats per frame. Near 0 when the model hears the transcript;
above ``align.nemo_max_gap`` the utterance is skipped as ``text_mismatch``."""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from semantic_bridge.base.audio import resample
from semantic_bridge.base.device import default_device
from semantic_bridge.base.errors import Skip
from semantic_bridge.models.nemo import NemoModel

from .common import ALIGN_FAILED, OOV, TEXT_MISMATCH, Aligned, Item, Outcome


class NemoAligner:
    """CTC forced alignment with a NeMo model (``EncDecCTCModel`` or a hybrid's CTC head)."""

    name = "nemo"

    def __init__(self, model: str, batch_size: int, max_gap: float) -> None:
        from nemo.collections.asr.models import ASRModel

        self.device = default_device()
        self._loaded = NemoModel(model, ASRModel, self.device, "align.nemo_model")
        self.model = self._loaded.model
        self.batch_size = batch_size
        self.max_gap = max_gap
        self.ctc = getattr(self.model, "ctc_decoder", None) or self.model.decoder
        self.vocabulary = list(self.ctc.vocabulary)
        self.blank = len(self.vocabulary)  # NeMo puts the CTC blank last
        self.tokenizer = getattr(self.model, "tokenizer", None)  # None for character models
        self.sample_rate = int(self.model.cfg.sample_rate)
        self.window_stride = float(self.model.cfg.preprocessor.window_stride)

    def _targets(self, words: list[str]) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of the transcript and, per word, its [first, last] token index."""
        ids: list[int] = []
        ranges = []
        for k, word in enumerate(words):
            if self.tokenizer is not None:
                word_ids = list(self.tokenizer.text_to_ids(word))
                unk = getattr(self.tokenizer, "unk_id", None)
                if not word_ids or (unk is not None and unk >= 0 and unk in word_ids):
                    raise Skip(OOV, word)
            else:
                if k > 0 and " " in self.vocabulary:
                    ids.append(self.vocabulary.index(" "))
                if any(c not in self.vocabulary for c in word):
                    raise Skip(OOV, word)
                word_ids = [self.vocabulary.index(c) for c in word]
            ranges.append((len(ids), len(ids) + len(word_ids) - 1))
            ids.extend(word_ids)
        return ids, ranges

    def align_batch(self, items: list[Item]) -> list[Outcome]:
        out: list[Outcome] = []
        for b in range(0, len(items), self.batch_size):
            out.extend(self._align(items[b : b + self.batch_size]))
        return out

    def _align(self, items: list[Item]) -> list[Outcome]:
        waves = [resample(it.audio, it.sample_rate, self.sample_rate) for it in items]
        lengths = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), int(lengths.max()))
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(w)
        with torch.inference_mode():
            feats, feat_len = self.model.preprocessor(input_signal=batch.to(self.device),
                                                      length=lengths.to(self.device))
            encoded, enc_len = self.model.encoder(audio_signal=feats, length=feat_len)
            log_probs = self.ctc(encoder_output=encoded).float().cpu()
        results: list[Outcome] = []
        for i, words in enumerate(it.words for it in items):
            frames = int(enc_len[i])
            stride = self.window_stride * round(int(feat_len[i]) / max(frames, 1))
            try:
                ids, ranges = self._targets(words)
                path, scores = AF.forced_align(log_probs[i : i + 1, :frames], torch.tensor([ids]),
                                               blank=self.blank)
            except Skip as err:
                results.append(err)
                continue
            except RuntimeError as err:  # e.g. more tokens than frames
                results.append(Skip(ALIGN_FAILED, str(err).splitlines()[0]))
                continue
            spans = AF.merge_tokens(path[0], scores[0].exp(), blank=self.blank)
            if len(spans) != len(ids):
                results.append(Skip(ALIGN_FAILED, f"{len(spans)} token spans for {len(ids)} tokens"))
                continue
            frames_lp = log_probs[i, :frames]
            in_words = torch.zeros(frames, dtype=torch.bool)
            for a, z in ranges:
                in_words[spans[a].start : spans[z].end] = True
            gap = float((frames_lp.max(-1).values - scores[0])[in_words].mean())
            if gap > self.max_gap:
                results.append(Skip(TEXT_MISMATCH, f"best labels beat the forced path by {gap:.2f} "
                                                   f"nats per frame (> align.nemo_max_gap {self.max_gap})"))
                continue
            results.append(Aligned([(spans[a].start * stride, spans[z].end * stride) for a, z in ranges], gap))
        return results
