"""Corpus sources for ``prepare``: the embedded synthetic corpus, a Hugging Face dataset,
or a manifest of files. Each yields ``Utterance`` rows (audio read lazily) or ``Skip``
rows with a reason; ``prepare`` standardises, splits and writes them.
"""

from __future__ import annotations

import csv
from collections import Counter
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np

from semantic_bridge.config import DataConfig, SplitConfig
from semantic_bridge.base.audio import NO_SPEAKER, NO_TEXT, UNREADABLE, read_audio
from semantic_bridge.base.errors import DataError, Skip
from semantic_bridge.corpus.espeak import EspeakError, SynthJob, Word, synthesize_many, variant_gender
from semantic_bridge.corpus.sentences import generate_sentences

SPLITS = ("train", "valid", "test", "dev")
BAD_ROW = "bad_row"


@dataclass
class Utterance:
    id: str
    speaker: str
    text: str
    load: Callable[[], tuple[np.ndarray, int]]  # -> (audio [C, N] or [N], sample_rate)
    words: list[Word] = field(default_factory=list)  # ground-truth timings when known
    voice: str = ""  # synthesiser voice (embedded corpus), else ""


Row = Union[Utterance, Skip]  # a usable row, or a counted skip (with its id and speaker)


def check_split_plan(counts: Counter, split_of: dict[str, str], need_trials: bool) -> None:
    """From metadata alone, before any audio is decoded: every split has speakers, and the test
    split can give a trial list (two speakers, one with two utterances) when ``need_trials``."""
    per_split: dict[str, list[int]] = {s: [] for s in SPLITS}
    for spk, split in split_of.items():
        per_split[split].append(counts.get(spk, 0))
    for split, sizes in per_split.items():
        if not sum(sizes):
            raise DataError(f"data.splits: the {split} split gets no utterance")
    test = per_split["test"]
    if need_trials and max(test) < 2:
        raise DataError(f"data.splits: the {len(test)} test speakers have one utterance each: "
                        "no same-speaker trial is possible (more test speakers or utterances needed)")


def assign_speaker_splits(speakers: list[str], cfg: SplitConfig, seed: int) -> dict[str, str]:
    """Speaker-disjoint split assignment: a seeded shuffle of the sorted speakers; the
    first go to test, then valid, then dev; the rest to train."""
    ordered = sorted(set(speakers))
    held = cfg.test_speakers + cfg.valid_speakers + cfg.dev_speakers
    if len(ordered) <= held:
        raise DataError(
            f"data.splits: {len(ordered)} speakers cannot give {held} held-out speakers and a train split"
        )
    perm = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in perm]
    out: dict[str, str] = {}
    bounds = [("test", cfg.test_speakers), ("valid", cfg.valid_speakers), ("dev", cfg.dev_speakers)]
    i = 0
    for split, count in bounds:
        for spk in shuffled[i : i + count]:
            out[spk] = split
        i += count
    for spk in shuffled[i:]:
        out[spk] = "train"
    return out


# --------------------------------------------------------------------------- synthetic
@dataclass(frozen=True)
class SyntheticSpeaker:
    name: str
    voice: str
    pitch: int
    rate: int

    @property
    def description(self) -> str:
        return f"{self.voice}/p{self.pitch}/r{self.rate}"

    @property
    def gender(self) -> Optional[str]:
        """'male' / 'female' as the espeak-ng voice variant states it; None if it does not."""
        return variant_gender(self.voice)


class SyntheticSource:
    """English speech synthesised offline by espeak-ng. Speakers are distinct
    (voice variant, pitch, rate) triples; sentences are generated and all distinct."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        s = cfg.synthetic
        rng = np.random.default_rng(seed)
        # round-robin over voice variants (each with its pitch x rate grid in a seeded
        # order), so that a small n_speakers still uses every variant
        grids = []
        for voice in s.voices:
            grid = list(itertools.product(s.pitch, s.rate))
            grids.append([(voice, *grid[i]) for i in rng.permutation(len(grid))])
        picked = [c for group in itertools.zip_longest(*grids) for c in group if c][: s.n_speakers]
        self.speakers = [SyntheticSpeaker(f"spk{i:02d}", v, p, r) for i, (v, p, r) in enumerate(picked)]
        self.per_speaker = s.utterances_per_speaker
        self.word_gap_ms = s.word_gap_ms
        self.workers = min(4, os.cpu_count() or 1)
        self.sentences = generate_sentences(len(self.speakers) * self.per_speaker, seed)

    def speaker_names(self) -> list[str]:
        return [spk.name for spk in self.speakers]

    def __len__(self) -> int:
        return len(self.speakers) * self.per_speaker

    def utterances_per_speaker(self) -> Counter:
        return Counter({spk.name: self.per_speaker for spk in self.speakers})

    def rows(self) -> Iterator[Row]:
        meta = [(spk, j, self.sentences[si * self.per_speaker + j])
                for si, spk in enumerate(self.speakers) for j in range(self.per_speaker)]
        jobs = (SynthJob(text, spk.voice, spk.pitch, spk.rate, self.word_gap_ms) for spk, _, text in meta)
        try:
            for (spk, j, text), synth in zip(meta, synthesize_many(jobs, self.workers), strict=True):
                yield Utterance(
                    id=f"{spk.name}/{j:04d}",
                    speaker=spk.name,
                    text=text,
                    load=lambda synth=synth: (synth.audio, synth.sample_rate),
                    words=synth.words,
                    voice=spk.description,
                )
        except EspeakError as err:
            raise DataError(f"data.synthetic.voices: {err}") from None


# --------------------------------------------------------------------------- hf
class HfSource:
    """A Hugging Face dataset: a ``save_to_disk`` directory, or anything ``load_dataset``
    takes (a hub name, or a local folder of parquet/csv files; offline, the hub is out of
    reach: use a local copy). Column names come from params."""

    def __init__(self, cfg: DataConfig) -> None:
        import datasets

        h = cfg.hf
        self.cfg, self.max_seconds = h, cfg.max_seconds
        path = Path(h.path or "")
        saved = any((path / f).is_file() for f in ("state.json", "dataset_dict.json"))
        try:
            if saved:  # written by save_to_disk
                ds = datasets.load_from_disk(str(path))
            else:  # a dataset name, or a local folder of data files (parquet, csv, ...)
                ds = datasets.load_dataset(h.path, h.name, split=h.split)
        except Exception as err:
            raise DataError(f"data.hf.path: cannot load {h.path!r}: {str(err).splitlines()[0]}") from None
        if isinstance(ds, datasets.DatasetDict):
            if h.split not in ds:
                raise DataError(f"data.hf.split: {h.split!r} not in {sorted(ds)}")
            ds = ds[h.split]
        needed = [h.audio_column, h.text_column, h.speaker_column] + ([h.id_column] if h.id_column else [])
        missing = [c for c in needed if c not in ds.column_names]
        if missing:
            raise DataError(f"data.hf: columns {missing} not in dataset columns {ds.column_names}")
        feature = ds.features[h.audio_column]
        if isinstance(feature, datasets.Audio):
            # decode ourselves (libsndfile): no dependency on the datasets audio backend
            ds = ds.cast_column(h.audio_column, datasets.Audio(decode=False))
        self.ds = ds

    def speaker_names(self) -> list[str]:
        return [str(s) for s in self.ds.unique(self.cfg.speaker_column) if _present(s)]

    def __len__(self) -> int:
        return len(self.ds)

    def utterances_per_speaker(self) -> Counter:
        return Counter(str(s) for s in self.ds[self.cfg.speaker_column] if _present(s))

    def rows(self) -> Iterator[Row]:
        h = self.cfg
        for i, row in enumerate(self.ds):
            uid = str(row[h.id_column]) if h.id_column and _present(row[h.id_column]) else f"{i:08d}"
            speaker, text = row[h.speaker_column], _text(row[h.text_column])
            if not _present(speaker):
                yield Skip(NO_SPEAKER, id=uid)
                continue
            if text is None:
                yield Skip(NO_TEXT, id=uid, speaker=str(speaker))
                continue
            yield Utterance(uid, str(speaker), text,
                            load=lambda a=row[h.audio_column]: _hf_audio(a, self.max_seconds))


def _present(value) -> bool:
    """A cell that holds something: 0 is a valid speaker or id, None and "" are not."""
    return value is not None and str(value).strip() != ""


def _text(value) -> Optional[str]:
    """A transcript: a non-empty string, or a number written as one ("12345")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _hf_audio(value, max_seconds: float) -> tuple[np.ndarray, int]:
    """Audio from an ``Audio(decode=False)`` cell ({bytes, path}) or an {array, sampling_rate} dict."""
    if isinstance(value, dict) and value.get("array") is not None:
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    if isinstance(value, dict) and value.get("bytes"):
        return read_audio(value["bytes"], max_seconds)
    if isinstance(value, dict) and value.get("path"):
        return read_audio(value["path"], max_seconds)
    raise Skip(UNREADABLE, "audio cell has neither bytes, path nor array")


# --------------------------------------------------------------------------- manifest
class ManifestSource:
    """A JSONL (one object per line) or CSV file with columns ``audio`` (path, absolute or
    relative to the manifest), ``text``, ``speaker`` and optionally ``id``."""

    REQUIRED = ("audio", "text", "speaker")

    def __init__(self, cfg: DataConfig) -> None:
        self.path = Path(cfg.manifest.path or "")
        self.max_seconds = cfg.max_seconds
        if not self.path.is_file():
            raise DataError(f"data.manifest.path: file not found: {self.path}")
        self.entries: list[tuple[int, Optional[dict]]] = list(self._read())

    def _read(self) -> Iterator[tuple[int, Optional[dict]]]:
        suffix = self.path.suffix.lower()
        with self.path.open(newline="", encoding="utf-8-sig") as f:  # a UTF-8 BOM is not data
            if suffix == ".csv":
                reader = csv.DictReader(f)
                missing = [c for c in self.REQUIRED if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{self.path}: CSV header lacks columns {missing}")
                for line, row in enumerate(reader, start=2):
                    yield line, row
            elif suffix in (".jsonl", ".json"):
                for line, text in enumerate(f, start=1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError:
                        obj = None
                    yield line, obj if isinstance(obj, dict) else None
            else:
                raise DataError(f"data.manifest.path: {self.path} must end in .jsonl or .csv")

    def speaker_names(self) -> list[str]:
        return [str(r["speaker"]) for _, r in self.entries if r and _present(r.get("speaker"))]

    def __len__(self) -> int:
        return len(self.entries)

    def utterances_per_speaker(self) -> Counter:
        return Counter(self.speaker_names())

    def rows(self) -> Iterator[Row]:
        root = self.path.parent
        for line, row in self.entries:
            uid = str(row["id"]) if row and _present(row.get("id")) else f"{self.path.stem}-{line:06d}"
            if row is None or not _present(row.get("audio")):
                yield Skip(BAD_ROW, f"{self.path}:{line}", id=uid, speaker=(row or {}).get("speaker"))
                continue
            if not _present(row.get("speaker")):
                yield Skip(NO_SPEAKER, f"{self.path}:{line}", id=uid)
                continue
            text = _text(row.get("text"))
            if text is None:
                yield Skip(NO_TEXT, f"{self.path}:{line}", id=uid, speaker=str(row["speaker"]))
                continue
            audio_path = Path(str(row["audio"]))
            audio_path = audio_path if audio_path.is_absolute() else root / audio_path
            yield Utterance(uid, str(row["speaker"]), text,
                            load=lambda p=audio_path: read_audio(p, self.max_seconds))


def make_source(cfg: DataConfig, seed: int) -> Union[SyntheticSource, HfSource, ManifestSource]:
    if cfg.source == "synthetic":
        return SyntheticSource(cfg, seed)
    if cfg.source == "hf":
        return HfSource(cfg)
    return ManifestSource(cfg)
