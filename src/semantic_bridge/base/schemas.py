"""The columns of every dataset the stages write (DESIGN §2): one definition per column, so the
stages that write a column and the stages that read it cannot drift apart."""

from __future__ import annotations

import datasets

_STR = datasets.Value("string")
_I32 = datasets.Value("int32")
_AUDIO = datasets.List(datasets.Value("float32"))  # [N] at sample_rate

WORD = datasets.Features({"word": _STR, "start": datasets.Value("float32"),
                          "end": datasets.Value("float32")})
WORDS = datasets.List(WORD)  # [{word, start, end}] in seconds, one per transcript word

# wavlm, qwen: beside the splits, what made the features (the extractor's identity, JSON)
TEACHER_FILE = "teacher.json"

# prepare: data/prepared/corpus/<split>
CORPUS = datasets.Features({
    "id": _STR, "speaker": _STR, "text": _STR, "split": _STR, "audio": _AUDIO,
    "sample_rate": _I32, "seconds": datasets.Value("float32"),
    "words": WORDS,  # the corpus's own timings (espeak-ng's for the embedded corpus), or []
    "voice": _STR, "source": _STR,
})
# prepare: data/prepared/trial_audio, data/prepared/qa_audio
TRIAL_AUDIO = datasets.Features({"path": _STR, "audio": _AUDIO})
QA_AUDIO = datasets.Features({"filepath": _STR, "audio": _AUDIO})

# align: data/aligned/<split>
ALIGNED = datasets.Features({"id": _STR, "text": _STR, "n_frames": _I32, "words": WORDS,
                             "backend": _STR})


def _frames(dim: int) -> datasets.Array2D:
    return datasets.Array2D((None, dim), "float16")  # [n_frames, dim] at 12.5 Hz


_MASK = datasets.List(datasets.Value("bool"))  # [n_frames]


def wavlm(dim: int) -> datasets.Features:
    """wavlm: data/wavlm/<split>."""
    return datasets.Features({"id": _STR, "n_frames": _I32, "wavlm": _frames(dim)})


def llm(dim: int) -> datasets.Features:
    """qwen: data/qwen/<split>; ``llm_mask`` is False before the first token has ended."""
    return datasets.Features({"id": _STR, "n_frames": _I32, "llm": _frames(dim), "llm_mask": _MASK})


def merged(wavlm_dim: int, llm_dim: int) -> datasets.Features:
    """merge: data/merged/<split>, the training tuples."""
    return datasets.Features({"id": _STR, "speaker": _STR, "text": _STR, "words": WORDS,
                              "audio": _AUDIO, "sample_rate": _I32, "n_frames": _I32,
                              "wavlm": _frames(wavlm_dim), "llm": _frames(llm_dim),
                              "llm_mask": _MASK})
