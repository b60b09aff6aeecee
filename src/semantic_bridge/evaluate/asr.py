"""Speech recognisers for the WER evaluations, chosen by ``eval.wer.backend``:

- ``faster_whisper`` (embedded default): a CTranslate2 Whisper through faster-whisper;
  ``eval.wer.model`` is a registry key (``whisper-tiny.en``, ``whisper-base``: real weights that
  ship offline, ``models/weights.py``) or a CTranslate2 model folder. Greedy, English, no
  timestamps, no conditioning on earlier text: every utterance is transcribed on its own.
- ``pocketsphinx``: the US-English acoustic model and dictionary that the pip package ships,
  with either its bundled general-English LM or (``eval.wer.pocketsphinx_lm: corpus``) a bigram
  LM trained on the train split's transcripts. Real and offline; weak on synthetic voices.
- ``whisper``: any Whisper checkpoint through transformers (``eval.wer.model``: name or path).
- ``nemo``: any NeMo ASR model (CTC, RNN-T, hybrid) by name or ``.nemo`` path.

Every backend takes ``(audio[N] float32, sample_rate)`` pairs and returns raw text; the
WER metric normalises it.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Protocol

import numpy as np

from ..base.audio import resample, to_pcm16k
from ..base.device import default_device
from ..base.errors import ConfigError
from ..base.pool import WorkerPool, cpu_count
from ..config import EvalWerConfig
from .common import iter_split

Audio = tuple[np.ndarray, int]

log = logging.getLogger(__name__)


class Recognizer(Protocol):
    name: str
    model: Optional[str]

    def transcribe(self, audios: list[Audio]) -> list[str]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- pocketsphinx
_decoder = None  # one per worker process
_lm_path: Optional[str] = None  # set in each worker by _sphinx_init


def _sphinx_init(lm_path: Optional[str]) -> None:
    global _lm_path, _decoder
    _lm_path, _decoder = lm_path, None


def _sphinx_transcribe(pcm: bytes) -> str:
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        lm = {"lm": _lm_path} if _lm_path else {}  # default: the bundled en-us LM
        _decoder = Decoder(samprate=16000, loglevel="FATAL", **lm)
    _decoder.reinit_feat()  # no cepstral-mean state carried over from the previous utterance
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


class PocketsphinxRecognizer:
    """Resampling in this process; decoding in spawned workers (one per CPU, at most 8).

    ``lm_texts``: transcripts for an in-domain bigram LM (None: the bundled general LM)."""

    name = "pocketsphinx"

    def __init__(self, lm_texts: Optional[Iterable[str]] = None, workers: Optional[int] = None) -> None:
        self._dir = None
        lm_path = None
        self.model = "pocketsphinx en-us, bundled LM"
        if lm_texts is not None:
            from pocketsphinx import Decoder

            from .arpa import bigram_arpa, lm_sentences

            lexicon = Decoder(lm=None, samprate=16000, loglevel="FATAL")
            arpa = bigram_arpa(lm_sentences(lm_texts, lambda w: lexicon.lookup_word(w) is not None))
            self._dir = tempfile.TemporaryDirectory(prefix="sphinx-lm-")
            lm_path = str(Path(self._dir.name) / "corpus.arpa")
            Path(lm_path).write_text(arpa)
            self.model = "pocketsphinx en-us, bigram LM of the train transcripts"
        self.pool = WorkerPool(workers or min(cpu_count(), 8), _sphinx_init, (lm_path,))

    def transcribe(self, audios: list[Audio]) -> list[str]:
        return self.pool.map(_sphinx_transcribe, [to_pcm16k(a, sr) for a, sr in audios])

    def close(self) -> None:
        self.pool.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


# --------------------------------------------------------------------------- faster-whisper
# Speech runs at ~3-4 Whisper tokens a second; a hypothesis past this is a decoding loop
# (Whisper repeats a phrase until its 448-token window ends on unintelligible audio).
TOKENS_PER_SECOND = 8
TOKEN_ALLOWANCE = 8


def token_cap(seconds: float) -> int:
    """The most tokens one utterance of ``seconds`` may decode to."""
    return TOKEN_ALLOWANCE + math.ceil(TOKENS_PER_SECOND * seconds)


class FasterWhisperRecognizer:
    """CTranslate2 Whisper (faster-whisper's model, features and tokenizer), greedy, one
    utterance per window, several utterances at once on CPU.

    Decoding is faster-whisper's short-form path for audio that fits one window: the same
    prompt (start of transcript, no timestamps), suppressed tokens and no-speech rule (skip when
    P(no speech) > 0.6 and the mean token log-probability < -1), no temperature fallback. Two
    differences, both set here:

    - ``window_seconds``: the encoder reads the utterance zero-padded to this many seconds, not
      always to Whisper's 30 (the CTranslate2 encoder takes shorter inputs; 10 s is 5x less
      encoder work). 30 is Whisper's own protocol; an utterance longer than the window gets a
      window of 30 s, and audio over 30 s goes through faster-whisper's long-form ``transcribe``.
    - each hypothesis is capped at ``token_cap(duration)`` tokens, so a looping decode of
      unintelligible audio scores a bounded number of insertions rather than up to 448 tokens of
      one repeated phrase (WER up to ~30 on a 2 s clip); ``capped`` counts the utterances that
      hit the cap (each is logged).

    On CPU, ``workers`` threads decode one utterance each with one intra-op thread apiece
    (CTranslate2 releases the GIL): 1.35x the throughput of one utterance on two threads."""

    name = "faster_whisper"
    NO_SPEECH_PROB = 0.6   # faster-whisper's no_speech_threshold
    LOG_PROB_FLOOR = -1.0  # ... and log_prob_threshold
    LONGEST = 30.0         # Whisper's window, seconds

    def __init__(self, model: str, window_seconds: float = 30.0, workers: Optional[int] = None) -> None:
        import logging
        import os

        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        from ..models.weights import resolve

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one line per utterance otherwise

        if not 0 < window_seconds <= self.LONGEST:
            raise ConfigError(f"eval.wer.window_seconds: {window_seconds} is not in (0, 30]")
        self.model = model
        path = resolve(model)
        if not Path(path).is_dir():
            raise ConfigError(f"eval.wer.model: {model} is neither a registry model nor a folder")
        cuda = default_device().type == "cuda"
        threads = workers or int(os.environ.get("OMP_NUM_THREADS", "0")) or cpu_count()  # params.cpu_threads
        self.workers = 1 if cuda else max(1, threads)
        import torch

        torch_threads = torch.get_num_threads()
        self.net = WhisperModel(path, device="cuda" if cuda else "cpu",
                                compute_type="float16" if cuda else "float32",
                                cpu_threads=1, num_workers=self.workers)
        torch.set_num_threads(torch_threads)  # CTranslate2 set this process's OpenMP threads to 1
        fe = self.net.feature_extractor
        self.rate = fe.sampling_rate
        self.frames_per_second = self.rate // fe.hop_length
        self.window_frames = int(round(window_seconds * self.frames_per_second))
        self.english_only = not self.net.model.is_multilingual
        tokenizer = Tokenizer(self.net.hf_tokenizer, self.net.model.is_multilingual,
                              task="transcribe", language="en")
        self.tokenizer = tokenizer
        self.prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        self.suppress = list(get_suppressed_tokens(tokenizer, [-1]))
        self.capped = 0
        self.last_capped: list[bool] = []  # per hypothesis of the last transcribe call

    def _one(self, audio: np.ndarray, sr: int) -> tuple[str, bool]:
        """(text, hit the token cap) for one utterance."""
        wave = np.ascontiguousarray(resample(audio, sr, self.rate), dtype=np.float32)
        seconds = len(wave) / self.rate
        cap = token_cap(seconds)
        if seconds > self.LONGEST:
            return self._long_form(wave, cap)
        features = self.net.feature_extractor(wave)
        content = features[:, : features.shape[-1] - 1]  # faster-whisper drops the padding frame
        width = self.window_frames if content.shape[-1] <= self.window_frames \
            else int(self.LONGEST * self.frames_per_second)
        padded = np.zeros((content.shape[0], width), dtype=np.float32)
        padded[:, : content.shape[-1]] = content
        encoded = self.net.encode(padded)
        result = self.net.model.generate(
            encoded, [self.prompt], beam_size=1, patience=1, length_penalty=1,
            repetition_penalty=1, no_repeat_ngram_size=0, max_length=len(self.prompt) + cap,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self.suppress)[0]
        tokens = result.sequences_ids[0]
        mean_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > self.NO_SPEECH_PROB and mean_log_prob <= self.LOG_PROB_FLOOR:
            return "", False
        text = self.tokenizer.decode([t for t in tokens if t < self.tokenizer.eot]).strip()
        # faster-whisper counts one of the cap's tokens that the hypothesis does not list
        return text, len(tokens) >= cap - 1

    def _long_form(self, wave: np.ndarray, cap: int) -> tuple[str, bool]:
        segments, _ = self.net.transcribe(
            wave, language=None if self.english_only else "en", task="transcribe",
            beam_size=1, best_of=1, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False, max_new_tokens=cap)
        segments = list(segments)
        text = " ".join(seg.text.strip() for seg in segments).strip()
        return text, sum(len(seg.tokens) for seg in segments) >= cap - 1

    def transcribe(self, audios: list[Audio]) -> list[str]:
        if self.workers > 1 and len(audios) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers) as pool:
                results = list(pool.map(lambda pair: self._one(*pair), audios))
        else:
            results = [self._one(audio, sr) for audio, sr in audios]
        self.last_capped = [capped for _, capped in results]
        for (audio, sr), (text, capped) in zip(audios, results):
            if capped:
                self.capped += 1
                log.warning("ASR hypothesis cut at %d tokens (%.1f s of audio; a decoding loop): %.60s...",
                            token_cap(len(audio) / sr), len(audio) / sr, text)
        return [text for text, _ in results]

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- whisper
class WhisperRecognizer:
    """Greedy decoding, English transcription, batched; 30 s windows (longer audio is cut).

    Each hypothesis is capped at ``token_cap(duration)`` text tokens, as with faster-whisper:
    a batch decodes up to its longest utterance's cap and each hypothesis is cut at its own
    (greedy decoding: the cut is the hypothesis a decode with that cap would give);
    ``capped`` counts the hypotheses cut."""

    name = "whisper"

    def __init__(self, model: str, batch_size: int = 16) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.torch = torch
        self.model = model
        self.device = default_device()
        self.processor = WhisperProcessor.from_pretrained(model)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.net = WhisperForConditionalGeneration.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.rate = self.processor.feature_extractor.sampling_rate
        self.batch_size = batch_size
        gen = self.net.generation_config
        # English-only checkpoints take no language/task tokens
        self.kwargs = {"language": "en", "task": "transcribe"} if getattr(gen, "is_multilingual", False) else {}
        self.max_new = self.net.config.max_target_positions - 8  # room for the prompt tokens
        self.special = set(self.processor.tokenizer.all_special_ids)
        self.capped = 0
        self.last_capped: list[bool] = []  # per hypothesis of the last transcribe call

    def transcribe(self, audios: list[Audio]) -> list[str]:
        out: list[str] = []
        self.last_capped = []
        tokenizer = self.processor.tokenizer
        for b in range(0, len(audios), self.batch_size):
            batch = audios[b : b + self.batch_size]
            caps = [token_cap(len(a) / sr) for a, sr in batch]
            waves = [resample(a, sr, self.rate) for a, sr in batch]
            feats = self.processor.feature_extractor(waves, sampling_rate=self.rate, return_tensors="pt")
            x = feats.input_features.to(self.device, self.net.dtype)
            with self.torch.inference_mode():
                ids = self.net.generate(x, do_sample=False, max_new_tokens=min(max(caps), self.max_new),
                                        **self.kwargs)
            for row, cap, (audio, sr) in zip(ids.tolist(), caps, batch):
                text_ids = [t for t in row if t not in self.special]
                self.last_capped.append(len(text_ids) >= cap)
                if len(text_ids) >= cap:
                    self.capped += 1
                    log.warning("ASR hypothesis cut at %d tokens (%.1f s of audio; a decoding loop)",
                                cap, len(audio) / sr)
                out.append(tokenizer.decode(text_ids[:cap], skip_special_tokens=True).strip())
        return out

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- nemo
class NemoRecognizer:
    name = "nemo"

    def __init__(self, model: str, batch_size: int = 16) -> None:
        from nemo.collections.asr.models import ASRModel

        from ..models.nemo import NemoModel

        self.model = model
        self._loaded = NemoModel(model, ASRModel, default_device(), "eval.wer.model")
        self.net = self._loaded.model
        self.rate = int(self.net.cfg.sample_rate)
        self.batch_size = batch_size

    def transcribe(self, audios: list[Audio]) -> list[str]:
        waves = [resample(a, sr, self.rate) for a, sr in audios]
        hyps = self.net.transcribe(waves, batch_size=self.batch_size, verbose=False)
        if isinstance(hyps, tuple):  # some models return (best, all) hypotheses
            hyps = hyps[0]
        return [(h if isinstance(h, str) else h.text).strip() for h in hyps]

    def close(self) -> None:
        pass


def transcribe_flagged(asr: Recognizer, audios: list[Audio]) -> tuple[list[str], list[bool]]:
    """``asr.transcribe(audios)`` and, per hypothesis, whether it hit the recogniser's loop cap
    (all False for backends without one)."""
    texts = asr.transcribe(audios)
    flags = list(getattr(asr, "last_capped", None) or [False] * len(texts))
    return texts, flags


def transcribe_counted(asr: Recognizer, audios: list[Audio]) -> tuple[list[str], int]:
    """``asr.transcribe(audios)`` and how many of these hypotheses hit the recogniser's loop cap."""
    texts, flags = transcribe_flagged(asr, audios)
    return texts, sum(flags)


def make_recognizer(cfg: EvalWerConfig, corpus: Optional[str] = None) -> Recognizer:
    """The configured recogniser; ``corpus`` (a prepared corpus folder) supplies the train
    transcripts for pocketsphinx's in-domain LM."""
    if cfg.backend == "pocketsphinx":
        if cfg.pocketsphinx_lm == "corpus":
            if corpus is None:
                raise ValueError("pocketsphinx_lm 'corpus' needs the corpus folder")
            texts = (r["text"] for r in iter_split(corpus, "train", ["text"]))
            return PocketsphinxRecognizer(texts)
        return PocketsphinxRecognizer()
    if not cfg.model:
        raise ConfigError(f"eval.wer.model: required for backend {cfg.backend!r} (a name or path)")
    if cfg.backend == "faster_whisper":
        return FasterWhisperRecognizer(cfg.model, cfg.window_seconds)
    if cfg.backend == "whisper":
        return WhisperRecognizer(cfg.model, cfg.batch_size)
    return NemoRecognizer(cfg.model, cfg.batch_size)
