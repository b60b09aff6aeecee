"""Typed configuration: one dataclass per ``params.yaml`` section.

``load_params`` merges the YAML file into these dataclasses with OmegaConf's
structured merge, so an unknown key, a wrong type or a missing file fails *before*
any work starts, with one line that names the file and the key.
Defaults here match the committed ``params.yaml`` (a test checks it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .base.errors import ConfigError
from .base.frames import FRAME_RATE, FrameError, samples_per_frame

SCALES = ("embedded", "paper")
SOURCES = ("synthetic", "hf", "manifest")
ALIGN_BACKENDS = ("pocketsphinx", "nemo", "given")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")


def _at_least(key: str, value: float, minimum: float, why: str = "") -> None:
    if not value >= minimum:
        raise ConfigError(f"{key}: must be >= {minimum:g}{why}, got {value!r}")


def _in(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: must be in [{lo:g}, {hi:g}], got {value!r}")


_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def _size(key: str, value: str) -> None:
    """A size ``datasets`` understands: ``500MB``, ``1GiB``, ``300KB``."""
    if not _SIZE.match(str(value)):
        raise ConfigError(f"{key}: {value!r} is not a size like 500MB or 1GiB")


# --------------------------------------------------------------------------- data
@dataclass
class SplitConfig:
    """Speaker-disjoint splits: counts of speakers held out; the rest is train."""

    valid_speakers: int = 3
    test_speakers: int = 5
    dev_speakers: int = 4  # disjoint speakers for probes (linear speaker probe, ...)

    def __post_init__(self) -> None:
        _at_least("data.splits.valid_speakers", self.valid_speakers, 1, " (held-out training losses)")
        _at_least("data.splits.test_speakers", self.test_speakers, 2,
                  " (a speaker-verification trial list needs two speakers)")
        _at_least("data.splits.dev_speakers", self.dev_speakers, 1, " (speaker probes train on them)")


@dataclass
class SyntheticConfig:
    """The embedded corpus: espeak-ng speech, speakers = voice variant x pitch x rate.

    Voices are variants whose output is deterministic: espeak-ng's breathy variants
    (f2, f3, f5) give different samples from run to run (measured; rand() seeded or not)
    and would break byte-identical corpora."""

    n_speakers: int = 32
    utterances_per_speaker: int = 20
    voices: list[str] = field(
        default_factory=lambda: [
            "en-us+m1", "en-us+m3", "en-us+m6", "en-us+m8", "en-us+edward", "en-us+steph", "en-us+steph3",
        ]
    )
    pitch: list[int] = field(default_factory=lambda: [40, 50, 60])  # espeak 0..99
    rate: list[int] = field(default_factory=lambda: [130, 145])  # words per minute
    word_gap_ms: int = 50  # pause between words; espeak sets it in 10 ms steps

    def __post_init__(self) -> None:
        _at_least("data.synthetic.n_speakers", self.n_speakers, 1)
        _at_least("data.synthetic.utterances_per_speaker", self.utterances_per_speaker, 2,
                  " (target trials pair two utterances of a speaker)")
        _in("data.synthetic.word_gap_ms", self.word_gap_ms, 0, 1000)
        for key, values, lo, hi in (("voices", self.voices, None, None), ("pitch", self.pitch, 0, 99),
                                    ("rate", self.rate, 80, 450)):
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"data.synthetic.{key}: need a list of distinct values, got {values!r}")
            if lo is not None:
                for v in values:
                    _in(f"data.synthetic.{key}", v, lo, hi)


@dataclass
class HfSourceConfig:
    """A Hugging Face dataset: a ``save_to_disk`` directory, or a name for ``load_dataset``."""

    path: Optional[str] = None
    name: Optional[str] = None  # dataset config name, e.g. "clean"
    split: str = "train"
    audio_column: str = "audio"
    text_column: str = "text"
    speaker_column: str = "speaker_id"
    id_column: Optional[str] = "id"


@dataclass
class ManifestSourceConfig:
    """A JSONL or CSV file with columns audio (path, relative to the file), text, speaker[, id]."""

    path: Optional[str] = None


@dataclass
class TrialsConfig:
    """Speaker-verification trial list (VoxCeleb1-O format)."""

    per_class: int = 300  # target and non-target trials each, embedded list
    voxceleb1_list: Optional[str] = None  # official trial list file; replaces the embedded one
    voxceleb1_audio: Optional[str] = None  # root that the list's wav paths are relative to

    def __post_init__(self) -> None:
        _at_least("data.trials.per_class", self.per_class, 1)


@dataclass
class QaConfig:
    """Audio question answering in ReasonAQA's JSON format."""

    train_questions: int = 240
    test_questions: int = 96
    reasonaqa_train: Optional[str] = None  # real ReasonAQA JSON files replace the embedded set
    reasonaqa_test: Optional[str] = None
    reasonaqa_audio: Optional[str] = None  # audio root for their filepath1/filepath2

    def __post_init__(self) -> None:
        _at_least("data.qa.train_questions", self.train_questions, 1)
        _at_least("data.qa.test_questions", self.test_questions, 1)


@dataclass
class DataConfig:
    source: str = "synthetic"
    sample_rate: int = 24000
    min_seconds: float = 0.5
    max_seconds: float = 30.0
    silence_dbfs: float = -60.0  # peak below this is "silent"
    max_shard_size: str = "500MB"  # every stage's dataset shards (DVC hashes files: few, large)
    splits: SplitConfig = field(default_factory=SplitConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    hf: HfSourceConfig = field(default_factory=HfSourceConfig)
    manifest: ManifestSourceConfig = field(default_factory=ManifestSourceConfig)
    trials: TrialsConfig = field(default_factory=TrialsConfig)
    qa: QaConfig = field(default_factory=QaConfig)

    def __post_init__(self) -> None:
        _choice("data.source", self.source, SOURCES)
        _positive("data.sample_rate", self.sample_rate)
        if not 0 <= self.min_seconds < self.max_seconds:
            raise ConfigError("data.min_seconds/max_seconds: need 0 <= min_seconds < max_seconds")
        if not self.silence_dbfs < 0:
            raise ConfigError(f"data.silence_dbfs: must be < 0 dBFS (full scale is 0), got {self.silence_dbfs}")
        _size("data.max_shard_size", self.max_shard_size)
        if self.source == "hf" and not self.hf.path:
            raise ConfigError("data.hf.path: required when data.source is 'hf'")
        if self.source == "manifest" and not self.manifest.path:
            raise ConfigError("data.manifest.path: required when data.source is 'manifest'")
        if (self.trials.voxceleb1_list is None) != (self.trials.voxceleb1_audio is None):
            raise ConfigError("data.trials.voxceleb1_list/voxceleb1_audio: set both or neither")
        qa = self.qa
        given = [qa.reasonaqa_train, qa.reasonaqa_test, qa.reasonaqa_audio]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ConfigError(
                "data.qa.reasonaqa_train/reasonaqa_test/reasonaqa_audio: set all three or none"
            )
        s = self.synthetic
        n_held = self.splits.valid_speakers + self.splits.test_speakers + self.splits.dev_speakers
        if self.source == "synthetic" and s.n_speakers <= n_held:
            raise ConfigError(
                f"data.synthetic.n_speakers: {s.n_speakers} leaves no train speakers "
                f"after {n_held} held-out speakers"
            )
        if s.n_speakers > len(s.voices) * len(s.pitch) * len(s.rate):
            raise ConfigError(
                "data.synthetic.n_speakers: more than voices x pitch x rate distinct speakers"
            )


# --------------------------------------------------------------------------- align
@dataclass
class AlignConfig:
    backend: str = "pocketsphinx"
    nemo_model: str = "nvidia/parakeet-ctc-0.6b"  # name or .nemo path, for backend "nemo"
    batch_size: int = 8
    # text-mismatch check: skip when an unconstrained decode beats the forced alignment by more
    # than this per frame over the words' frames (align/pocketsphinx.py, align/nemo.py)
    pocketsphinx_max_gap: float = 4.5  # pocketsphinx acoustic log-score x1000 per frame
    nemo_max_gap: float = 1.0  # nats per frame (CTC best label vs forced label)

    def __post_init__(self) -> None:
        _choice("align.backend", self.backend, ALIGN_BACKENDS)
        _at_least("align.batch_size", self.batch_size, 1)
        _positive("align.pocketsphinx_max_gap", self.pocketsphinx_max_gap)
        _positive("align.nemo_max_gap", self.nemo_max_gap)


# --------------------------------------------------------------------------- teachers
@dataclass
class WavlmConfig:
    model: str = "models/whisper-tiny.en"  # real, converted by real_models; paper: microsoft/wavlm-large
    layer: int = 4  # index into hidden_states (0 = CNN features after projection); paper: 6
    dim: int = 384  # paper: 1024
    batch_seconds: float = 120.0  # audio seconds per length-bucketed batch
    # Whisper encoders only: each utterance is encoded in consecutive windows of this length,
    # the encoder's positions cut to it (Whisper's own window: 30 s; 10 s is ~3.5x faster)
    whisper_window_seconds: float = 10.0

    def __post_init__(self) -> None:
        w = self.whisper_window_seconds
        if not 0 < w <= 30 or abs(w * 12.5 - round(w * 12.5)) > 1e-9:
            raise ConfigError("teachers.wavlm.whisper_window_seconds: a multiple of 0.08 s (one codec "
                              f"frame) in (0, 30], got {w!r}")


@dataclass
class LlmConfig:
    model: str = "models/smollm2-135m"  # real, from GGUF by real_models; paper: Qwen/Qwen2.5-1.5B
    layer: int = 29  # index into hidden_states: output of model.layers[layer - 1]; paper: 27
    dim: int = 576  # paper: 1536
    batch_size: int = 16


@dataclass
class TeachersConfig:
    wavlm: WavlmConfig = field(default_factory=WavlmConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    nproc_per_node: int = 1  # torchrun processes (one per GPU) for wavlm and qwen

    def __post_init__(self) -> None:
        _positive("teachers.nproc_per_node", self.nproc_per_node)
        for key, cfg in (("wavlm", self.wavlm), ("llm", self.llm)):
            _at_least(f"teachers.{key}.layer", cfg.layer, 0)
            _at_least(f"teachers.{key}.dim", cfg.dim, 1)
        _positive("teachers.wavlm.batch_seconds", self.wavlm.batch_seconds)
        _at_least("teachers.llm.batch_size", self.llm.batch_size, 1)


# --------------------------------------------------------------------------- codec
@dataclass
class CodecConfig:
    """Sizes of the Mimi encoder/decoder/transformers. Paper scale = kyutai Mimi's values.

    The frame rate is not a setting: it follows from the sample rate and the strides
    (``frame_rate``), as in EnCodec, and ``Params`` checks it against the frame contract."""

    hidden_size: int = 64  # latent width; paper (Mimi): 512
    num_filters: int = 8  # SEANet base channels; paper: 64
    upsampling_ratios: list[int] = field(default_factory=lambda: [8, 6, 5, 4])  # x2 -> 1920
    transformer_layers: int = 2  # per side; paper: 8
    attention_heads: int = 4  # paper: 8
    intermediate_size: int = 128  # paper: 2048
    codebook_dim: int = 32  # RVQ space; paper: 256
    init_from: Optional[str] = None  # paper: kyutai/mimi (name or path), for weight surgery
    output_init_scale: float = 0.02  # decoder's last conv scaled at init (no surgery): breaks the plateau
    decoder: str = "istft"  # istft: a Vocos-style iSTFT head (codec/istft.py) | seanet: Mimi's; paper: seanet
    istft_hop: int = 240  # istft: STFT hop in samples (100 Hz at 24 kHz); n_fft = 4 x hop
    istft_channels: int = 128  # istft: ConvNeXt width
    istft_layers: int = 4  # istft: causal ConvNeXt blocks

    def __post_init__(self) -> None:
        for key in ("hidden_size", "num_filters", "transformer_layers", "attention_heads",
                    "intermediate_size", "codebook_dim"):
            _positive(f"codec.{key}", getattr(self, key))
        _positive("codec.output_init_scale", self.output_init_scale)
        if self.decoder not in ("seanet", "istft"):
            raise ConfigError(f"codec.decoder: seanet or istft, got {self.decoder!r}")
        for key in ("istft_hop", "istft_channels", "istft_layers"):
            _positive(f"codec.{key}", getattr(self, key))
        if self.istft_hop % 2:
            raise ConfigError(f"codec.istft_hop: must be even, got {self.istft_hop}")
        if self.hidden_size % self.attention_heads:
            raise ConfigError("codec.hidden_size: must be divisible by codec.attention_heads")
        if not self.upsampling_ratios or min(self.upsampling_ratios) < 1:
            raise ConfigError(f"codec.upsampling_ratios: need ratios >= 1, got {self.upsampling_ratios}")
        if self.decoder == "istft" and self.frame_size // 2 % self.istft_hop:
            raise ConfigError(f"codec.istft_hop: {self.istft_hop} must divide the {self.frame_size // 2} "
                              "samples of one decoder-transformer frame (the product of codec.upsampling_ratios)")

    @property
    def frame_size(self) -> int:
        """Samples per latent frame: the SEANet strides, then Mimi's x2 downsampling."""
        return math.prod(self.upsampling_ratios) * 2

    def frame_rate(self, sample_rate: int) -> float:
        return sample_rate / self.frame_size

    @property
    def istft_frames_per_state(self) -> int:
        """STFT frames per decoder-transformer state (25 Hz, half a codec frame): 960 / 240 = 4."""
        return self.frame_size // 2 // self.istft_hop


@dataclass
class CodebooksConfig:
    semantic: int = 2  # CB0, CB1
    acoustic: int = 7  # CB2..CB8
    size: int = 2048  # entries per codebook
    dropout: float = 0.2  # P(drop all acoustic levels) per example, reached at the ramp's end
    dropout_ramp_steps: int = 300  # linear ramp from 0 to `dropout` over these steps
    quantizer_dropout: float = 0.0  # P(keep a random number of acoustic levels) per example
    quantization_rate: float = 1.0  # share of examples decoded from quantized codes (Mimi: 0.5)
    ema_decay: float = 0.99  # codebook EMA (Mimi: 0.99)
    kmeans_iters: int = 10  # k-means init of codebooks not initialised by surgery
    init_frames: int = 32768  # training frames that k-means initialisation sees (16 x 2048 codes)
    dead_code_ratio: float = 0.1  # re-init codes whose EMA usage < ratio x uniform usage

    def __post_init__(self) -> None:
        for key in ("dropout", "quantizer_dropout", "ema_decay", "quantization_rate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"codebooks.{key}: must be in [0, 1], got {value}")
        _positive("codebooks.size", self.size)
        if self.size & (self.size - 1):
            raise ConfigError(f"codebooks.size: must be a power of 2, got {self.size}")
        if self.semantic < 1 or self.acoustic < 1:
            raise ConfigError("codebooks.semantic/acoustic: need at least one level each")
        _at_least("codebooks.dropout_ramp_steps", self.dropout_ramp_steps, 0)
        _at_least("codebooks.kmeans_iters", self.kmeans_iters, 1)
        _at_least("codebooks.init_frames", self.init_frames, self.size, " (at least one frame per code)")
        _at_least("codebooks.dead_code_ratio", self.dead_code_ratio, 0, " (0 disables dead-code re-init)")

    @property
    def n_levels(self) -> int:
        return self.semantic + self.acoustic

    def bitrate_bps(self, frame_rate: float, levels: Optional[int] = None) -> float:
        """Bits per second of ``levels`` codebooks (all by default) at ``frame_rate``."""
        n = self.n_levels if levels is None else levels
        return n * math.log2(self.size) * frame_rate


# --------------------------------------------------------------------------- train
LOSS_KEYS = ("mel/loss", "adv/gen_loss", "adv/feat_loss", "vq/commitment",
             "distill/llm", "distill/wavlm", "adv/speaker")


@dataclass
class MelLossConfig:
    """Multi-scale log-mel L1: one STFT per window length (hop = window / 4)."""

    windows: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512, 1024, 2048])
    n_mels: list[int] = field(default_factory=lambda: [5, 10, 20, 40, 80, 160, 320])


@dataclass
class SpeakerAdversaryConfig:
    """A speaker classifier behind a gradient reversal on a codebook group (``train.adversary``;
    weight ``train.lambdas["adv/speaker"]``, 0 disables it): pushes timbre out of the group."""

    levels: list[int] = field(default_factory=lambda: [0])  # CB0: the LLM-distilled level
    hidden: int = 128

    def __post_init__(self) -> None:
        if not self.levels or any(lv < 0 for lv in self.levels):
            raise ConfigError(f"train.speaker_adversary.levels: non-empty, each >= 0, got {self.levels}")
        _positive("train.speaker_adversary.hidden", self.hidden)


@dataclass
class DiscriminatorConfig:
    """Multi-scale STFT discriminator (EnCodec's MS-STFTD)."""

    filters: int = 4  # paper: 32
    n_ffts: list[int] = field(default_factory=lambda: [1024, 256])  # paper: [2048, 1024, 512, 256, 128]
    lr: float = 3e-4


@dataclass
class TrainConfig:
    steps: int = 600
    batch_size: int = 6  # per process
    segment_seconds: float = 2.0  # random crops, frame-aligned
    lr: float = 2e-3
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    grad_clip: float = 1.0  # 0 disables
    adversarial_start: int = 600  # phase 2 (GAN) starts at this step; >= steps: no phase 2
    lambdas: dict[str, float] = field(
        default_factory=lambda: {
            "mel/loss": 15.0,
            "adv/gen_loss": 1.0,
            "adv/feat_loss": 2.0,
            "vq/commitment": 1.0,
            "distill/llm": 1.0,
            "distill/wavlm": 1.0,
            "adv/speaker": 0.0,  # off: README "Training" (it took the voice out of the resynthesis)
        }
    )
    mel: MelLossConfig = field(default_factory=MelLossConfig)
    speaker_adversary: SpeakerAdversaryConfig = field(default_factory=SpeakerAdversaryConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    log_every: int = 5
    checkpoint_every: int = 50  # resume point after a kill
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int = 1  # processes per node (DDP when > 1)
    num_nodes: int = 1
    precision: str = "auto"  # auto = bf16-mixed on GPU, 32-true on CPU
    num_workers: int = 0  # data loader processes
    eval_utterances: int = 64  # valid utterances for codebook usage / held-out losses
    standardize_teachers: bool = True  # distill towards per-dimension z-scored teacher features

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lambdas) - set(LOSS_KEYS))
        if unknown:
            raise ConfigError(f"train.lambdas: unknown loss {unknown[0]!r}; known: {', '.join(LOSS_KEYS)}")
        missing = sorted(set(LOSS_KEYS) - set(self.lambdas))
        if missing:
            raise ConfigError(f"train.lambdas: missing {missing[0]!r} (set it to 0 to disable)")
        for key in ("steps", "batch_size", "segment_seconds", "lr", "log_every",
                    "checkpoint_every", "devices", "num_nodes"):
            _positive(f"train.{key}", getattr(self, key))
        if len(self.mel.windows) != len(self.mel.n_mels) or not self.mel.windows:
            raise ConfigError("train.mel.windows/n_mels: need one n_mels per window")
        for key in ("windows", "n_mels"):
            _at_least(f"train.mel.{key}", min(getattr(self.mel, key)), 1)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas: need two values in [0, 1) (Adam's), got {self.betas}")
        _at_least("train.grad_clip", self.grad_clip, 0, " (0 disables clipping)")
        _at_least("train.adversarial_start", self.adversarial_start, 0)
        _at_least("train.num_workers", self.num_workers, 0)
        _at_least("train.eval_utterances", self.eval_utterances, 1)
        for key, weight in self.lambdas.items():
            _at_least(f"train.lambdas.{key}", weight, 0, " (0 disables the loss)")
        d = self.discriminator
        _at_least("train.discriminator.filters", d.filters, 1)
        _positive("train.discriminator.lr", d.lr)
        if not d.n_ffts or min(d.n_ffts) < 16:
            raise ConfigError(f"train.discriminator.n_ffts: need FFT sizes >= 16, got {d.n_ffts}")
        _choice("train.accelerator", self.accelerator, ("auto", "cpu", "gpu"))
        _choice("train.precision", self.precision, ("auto", "32-true", "bf16-mixed", "16-mixed"))

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes


# --------------------------------------------------------------------------- eval
ASR_BACKENDS = ("faster_whisper", "pocketsphinx", "whisper", "nemo")
SPEAKER_BACKENDS = ("campplus", "mfcc", "nemo")
REASONING_ENCODERS = ("htsat", "mimi_semantic", "mimi_full", "bridge")


@dataclass
class EvalWerConfig:
    """ASR for eval_wer and eval_swap."""

    backend: str = "faster_whisper"  # faster_whisper | pocketsphinx | whisper | nemo
    # faster_whisper: a registry key (whisper-tiny.en, whisper-base) or a CTranslate2 folder;
    # whisper / nemo: a name or path (paper: openai/whisper-large-v3)
    model: Optional[str] = "whisper-tiny.en"
    pocketsphinx_lm: str = "corpus"  # corpus (bigram LM of the train transcripts) | bundled
    batch_size: int = 16
    max_utterances: int = 30  # test utterances to score; 0 = all
    # faster_whisper: seconds the encoder reads, the utterance zero-padded: 30 = Whisper's own
    # protocol; 10 is 2.6x faster but reads differently (README "Evaluations"); longer ones get 30
    window_seconds: float = 30.0

    def __post_init__(self) -> None:
        _choice("eval.wer.backend", self.backend, ASR_BACKENDS)
        if not 0 < self.window_seconds <= 30:
            raise ConfigError(f"eval.wer.window_seconds: {self.window_seconds} is not in (0, 30]")
        _choice("eval.wer.pocketsphinx_lm", self.pocketsphinx_lm, ("corpus", "bundled"))
        if self.backend != "pocketsphinx" and not self.model:
            raise ConfigError(f"eval.wer.model: required for backend {self.backend!r} (a name or path)")
        _at_least("eval.wer.batch_size", self.batch_size, 1)
        if self.max_utterances < 0:
            raise ConfigError("eval.wer.max_utterances: must be >= 0 (0 = all)")


@dataclass
class EvalEerConfig:
    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0
    probe_c: float = 1.0  # inverse L2 strength of the linear speaker probe (logistic regression)
    speaker_model: str = "campplus"  # the reference row: CAM++ (registry key or .pt) on the original audio

    def __post_init__(self) -> None:
        if not 0 < self.p_target < 1:
            raise ConfigError(f"eval.eer.p_target: must be in (0, 1), got {self.p_target}")
        for key in ("c_miss", "c_fa", "probe_c"):
            _positive(f"eval.eer.{key}", getattr(self, key))


@dataclass
class EvalSwapConfig:
    pairs: int = 16
    # one row per entry: A's first k codebooks (1 = CB0, 2 = CB0+1, ...) with B's others
    content_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 5])
    speaker_backend: str = "campplus"  # campplus (real CAM++) | mfcc (no weights) | nemo (TitaNet)
    speaker_model: Optional[str] = "campplus"  # campplus: registry key or .pt; nemo: name or .nemo
    save_wavs: int = 4  # swapped pairs written as wav files (A, B, swap)

    def __post_init__(self) -> None:
        _positive("eval.swap.pairs", self.pairs)
        _at_least("eval.swap.save_wavs", self.save_wavs, 0)
        if not self.content_levels or len(set(self.content_levels)) != len(self.content_levels) \
                or min(self.content_levels) < 1:
            raise ConfigError("eval.swap.content_levels: a list of distinct level counts >= 1 "
                              f"(1 = CB0, 2 = CB0+1, ...), got {self.content_levels}")
        _choice("eval.swap.speaker_backend", self.speaker_backend, SPEAKER_BACKENDS)
        if self.speaker_backend != "mfcc" and not self.speaker_model:
            raise ConfigError(f"eval.swap.speaker_model: required for speaker_backend {self.speaker_backend!r}")


@dataclass
class EvalReasoningConfig:
    # encoder -> the model it loads (a path: it is also the DVC dependency of that encoder's stage)
    encoders: dict[str, str] = field(default_factory=lambda: {
        "htsat": "models/tiny-htsat",
        "mimi_semantic": "models/tiny-mimi",
        "mimi_full": "models/tiny-mimi",
        "bridge": "models/codec.pt",
    })
    lm: str = "models/smollm2-135m"  # the real SmolLM2-135M-Instruct (real_models stage), frozen
    steps: int = 60
    batch_size: int = 8
    lr: float = 3e-3
    max_audio_sec: float = 4.0  # clips are cut to this
    token_seconds: float = 0.8  # encoder frames are averaged into one LM input per this many seconds
    max_answer_tokens: int = 8  # greedy decoding length at test time
    answer_batch_size: int = 32  # questions answered per greedy generate call (no gradients: larger than batch_size)
    train_eval_questions: int = 96  # training questions answered for train_accuracy (seeded subset; 0 = all)
    # htsat: framewise = HTSAT's token grid before pooling (Mellow's approach) | clip = its one clip vector
    htsat_features: str = "framewise"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.encoders) - set(REASONING_ENCODERS))
        if unknown:
            raise ConfigError(f"eval.reasoning.encoders: unknown encoder {unknown[0]!r}; "
                              f"known: {', '.join(REASONING_ENCODERS)}")
        for key in ("steps", "batch_size", "lr", "max_audio_sec", "token_seconds", "max_answer_tokens"):
            _positive(f"eval.reasoning.{key}", getattr(self, key))
        _choice("eval.reasoning.htsat_features", self.htsat_features, ("framewise", "clip"))
        if self.answer_batch_size < 1:
            raise ConfigError(f"eval.reasoning.answer_batch_size: must be >= 1, got {self.answer_batch_size}")
        if self.train_eval_questions < 0:
            raise ConfigError(f"eval.reasoning.train_eval_questions: must be >= 0, got {self.train_eval_questions}")


@dataclass
class EvalQualityConfig:
    utterances: int = 5  # test utterances scored per row
    save_wavs: int = 2  # utterances written per row as wav files
    # a transformers MimiModel folder decoded from its first 1, 2, 8 codebooks (empty: no such rows);
    # paper: a local copy of kyutai/mimi
    reference_mimi: Optional[str] = "models/tiny-mimi"

    def __post_init__(self) -> None:
        _at_least("eval.quality.utterances", self.utterances, 1)
        _at_least("eval.quality.save_wavs", self.save_wavs, 0)


@dataclass
class EvalProbeConfig:
    steps: int = 300  # at most; the step is selected on the valid split
    lr: float = 1e-3
    batch_size: int = 32  # utterances per step
    dim: int = 128  # embedding and GRU width of the probe
    eval_every: int = 25  # steps between valid top-1 scores
    patience: int = 4  # valid scores without a new best before training stops

    def __post_init__(self) -> None:
        for key in ("steps", "lr", "batch_size", "dim", "eval_every", "patience"):
            _positive(f"eval.probe.{key}", getattr(self, key))


@dataclass
class EvalEditConfig:
    edits: int = 16  # seeded transcript edits (one word replaced) of test utterances
    content_levels: int = 2  # the donor word's levels spliced in (2 = CB0+1); A keeps the rest
    crossfade_ms: float = 10.0  # the waveform-splice baseline's crossfades
    save_wavs: int = 3  # edits written as wav files (A, donor, edit, baseline)

    def __post_init__(self) -> None:
        _positive("eval.edit.edits", self.edits)
        _at_least("eval.edit.content_levels", self.content_levels, 1)
        _at_least("eval.edit.crossfade_ms", self.crossfade_ms, 0)
        _at_least("eval.edit.save_wavs", self.save_wavs, 0)


@dataclass
class EvalConfig:
    wer: EvalWerConfig = field(default_factory=EvalWerConfig)
    eer: EvalEerConfig = field(default_factory=EvalEerConfig)
    swap: EvalSwapConfig = field(default_factory=EvalSwapConfig)
    reasoning: EvalReasoningConfig = field(default_factory=EvalReasoningConfig)
    probe: EvalProbeConfig = field(default_factory=EvalProbeConfig)
    quality: EvalQualityConfig = field(default_factory=EvalQualityConfig)
    edit: EvalEditConfig = field(default_factory=EvalEditConfig)


def check_frame_contract(codec: CodecConfig, sample_rate: int) -> None:
    """The codec's frames must be the pipeline's 80 ms frames (DESIGN §2)."""
    try:
        hop = samples_per_frame(sample_rate)
    except FrameError as err:
        raise ConfigError(f"data.sample_rate: {err}") from None
    if codec.frame_size != hop:
        raise ConfigError(
            f"codec.upsampling_ratios: {list(codec.upsampling_ratios)} (x2 downsampling) give "
            f"{codec.frame_size} samples per frame, but the {FRAME_RATE:g} Hz frame contract at "
            f"data.sample_rate {sample_rate} needs {hop}")


# --------------------------------------------------------------------------- root
@dataclass
class Params:
    scale: str = "embedded"  # recorded in every metrics file: which scale made the numbers
    seed: int = 1234
    cpu_threads: int = 2  # torch CPU threads of every stage: float results depend on it
    data: DataConfig = field(default_factory=DataConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    teachers: TeachersConfig = field(default_factory=TeachersConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    codebooks: CodebooksConfig = field(default_factory=CodebooksConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _choice("scale", self.scale, SCALES)
        _at_least("seed", self.seed, 0)
        _at_least("cpu_threads", self.cpu_threads, 1)
        check_frame_contract(self.codec, self.data.sample_rate)
        levels = self.codebooks.semantic + self.codebooks.acoustic
        if self.eval.edit.content_levels >= levels:
            raise ConfigError(f"eval.edit.content_levels: must be below the codec's {levels} levels "
                              f"(A keeps the rest), got {self.eval.edit.content_levels}")
        if max(self.eval.swap.content_levels) >= levels:
            raise ConfigError(f"eval.swap.content_levels: each must be below the codec's {levels} "
                              f"levels (B keeps the rest), got {self.eval.swap.content_levels}")

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate(self.data.sample_rate)


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or ""
    msg = getattr(err, "msg", None) or str(err).splitlines()[0]
    # OmegaConf appends "full_key: ..., object_type=..." lines; keep the first sentence only
    msg = msg.splitlines()[0]
    return f"{key}: {msg}" if key else msg


def params_from_dict(data: dict[str, Any], source: str = "<dict>") -> Params:
    """Build ``Params`` from a plain dict (the parsed YAML); raise ``ConfigError`` on misuse."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Params), OmegaConf.create(data))
        params = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {_omegaconf_message(err)}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    assert isinstance(params, Params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``path``; every error is a ``ConfigError`` with one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return params_from_dict(data, str(path))


def to_dict(params: Params) -> dict[str, Any]:
    """Plain-dict view (for metrics files and checkpoints)."""
    out = OmegaConf.to_container(OmegaConf.structured(params))
    assert isinstance(out, dict)
    return out
