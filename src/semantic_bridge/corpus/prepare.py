"""The ``prepare`` stage: corpus source -> standardised, speaker-split, sharded datasets,
plus the speaker-verification trial list and the audio-QA set.

Output layout (``out``, one DVC output, moved into place only when complete)::

    corpus/{train,valid,test,dev}/   HF dataset: id, speaker, text, split, audio, sample_rate,
                                     seconds, words[{word,start,end}], voice, source
    trials.txt                       VoxCeleb1-O format: "<1|0> spk/utt.wav spk/utt.wav"
    trial_audio/                     HF dataset: path, audio (every wav the trial list names)
    qa/{train,test}.json             ReasonAQA format (filepath1, filepath2, input, answer, taskname)
    qa_audio/                        HF dataset: filepath, audio (every clip the QA files name)
"""

from __future__ import annotations

import functools
import logging
from contextlib import ExitStack
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from semantic_bridge.base import audio as A
from semantic_bridge.base import schemas
from semantic_bridge.base.errors import DataError, Skip
from semantic_bridge.base.evalsets import (
    QaItem, make_trials, read_reasonaqa, trial_counts, read_trials, resolve_audio, write_reasonaqa, write_trials,
)
from semantic_bridge.base.files import staged_output
from semantic_bridge.base.progress import track
from semantic_bridge.base.shards import ShardedWriter, load_split, write_split_index
from semantic_bridge.config import DataConfig
from semantic_bridge.corpus.qa import SpeechClip, plan_questions, render_clips
from semantic_bridge.corpus.sources import (SPLITS, SyntheticSource, assign_speaker_splits,
                                            check_split_plan, make_source)

log = logging.getLogger(__name__)

UNASSIGNED = "unassigned"  # skipped rows whose speaker is unknown belong to no split
MISSING = "missing"


@dataclass
class SplitStats:
    utterances: int = 0
    seconds: float = 0.0
    speakers: set[str] = field(default_factory=set)
    skipped: Counter = field(default_factory=Counter)
    fixed: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        return {
            "utterances": self.utterances,
            "speakers": len(self.speakers),
            "hours": round(self.seconds / 3600, 4),
            "skipped": dict(sorted(self.skipped.items())),
            "fixed": dict(sorted(self.fixed.items())),
        }


@dataclass
class PrepareResult:
    stats: dict[str, SplitStats]
    clips: dict[str, list[SpeechClip]]  # per split, for QA
    trials: dict
    qa: dict

    def metrics(self, scale: str, data: DataConfig) -> dict:
        return {
            "scale": scale,
            "source": data.source,
            "sample_rate": data.sample_rate,
            "splits": {s: self.stats[s].to_json() for s in SPLITS},
            "skipped_unassigned": dict(sorted(self.stats[UNASSIGNED].skipped.items())),
            "trials": self.trials,
            "qa": self.qa,
        }


def _standardizer(d: DataConfig) -> Callable[[np.ndarray, int], A.Standardized]:
    """``audio.standardize`` bound to the ``data`` params; raises ``Skip`` for skips."""
    return functools.partial(A.standardize, target_rate=d.sample_rate, min_seconds=d.min_seconds,
                             max_seconds=d.max_seconds, silence_dbfs=d.silence_dbfs)


def _write_corpus(d: DataConfig, seed: int, out: Path
                  ) -> tuple[dict[str, SplitStats], dict[str, list[SpeechClip]]]:
    source = make_source(d, seed)
    split_of = assign_speaker_splits(source.speaker_names(), d.splits, seed)
    check_split_plan(source.utterances_per_speaker(), split_of, need_trials=not d.trials.voxceleb1_list)
    gender_of = {s.name: s.gender for s in source.speakers} if isinstance(source, SyntheticSource) else {}
    stats = {s: SplitStats() for s in (*SPLITS, UNASSIGNED)}
    clips: dict[str, list[SpeechClip]] = defaultdict(list)
    standardize = _standardizer(d)
    seen: set[str] = set()
    with ExitStack() as stack:  # a failure removes every split's partial shards
        writers = {s: stack.enter_context(ShardedWriter(out / "corpus" / s, schemas.CORPUS, d.max_shard_size))
                   for s in SPLITS}
        for row in track(source.rows(), f"prepare {d.source}", len(source), "utt"):
            split = split_of.get(row.speaker or "", UNASSIGNED)
            if isinstance(row, Skip):
                stats[split].skipped[row.reason] += 1
                log.warning("skip %s (%s) %s", row.id, row.reason, row.detail)
                continue
            if row.id in seen:
                stats[split].skipped[A.DUPLICATE_ID] += 1
                log.warning("skip %s (%s)", row.id, A.DUPLICATE_ID)
                continue
            seen.add(row.id)
            try:
                wav, rate = row.load()
                std = standardize(wav, rate)
            except Skip as err:
                stats[split].skipped[err.reason] += 1
                log.warning("skip %s (%s)", row.id, err)
                continue
            st = stats[split]
            st.utterances += 1
            st.seconds += std.seconds
            st.speakers.add(row.speaker)
            st.fixed.update(std.fixes)
            writers[split].write({
                "id": row.id, "speaker": row.speaker, "text": row.text, "split": split,
                "audio": std.audio, "sample_rate": std.sample_rate, "seconds": std.seconds,
                "words": [{"word": w.word, "start": w.start, "end": w.end} for w in row.words],
                "voice": row.voice, "source": d.source,
            })
            clips[split].append(SpeechClip(row.id, row.speaker, std.seconds, len(row.text.split()),
                                           gender_of.get(row.speaker)))
    write_split_index(out / "corpus", SPLITS)
    for s in SPLITS:
        if stats[s].utterances == 0:
            raise DataError(f"split {s!r} is empty after prepare: check the source and data.splits")
    return stats, clips


class _AudioById:
    """Random access to one prepared split's audio by utterance id (memory-mapped)."""

    def __init__(self, directory: Path) -> None:
        ds = load_split(directory)
        self.index = {uid: i for i, uid in enumerate(ds["id"])}
        self.ds = ds.with_format("numpy", columns=["audio"])

    def __call__(self, uid: str) -> np.ndarray:
        return self.ds[self.index[uid]]["audio"]


def _load_files(paths: Iterable[str], root: str, d: DataConfig, key: str, skipped: Counter
                ) -> Iterator[dict]:
    """Rows ``{key: path, audio}`` for files under ``root``; missing/bad files are counted."""
    standardize = _standardizer(d)
    for rel in paths:
        found = resolve_audio(root, rel)
        if found is None:
            skipped[MISSING] += 1
            log.warning("skip %s (missing under %s)", rel, root)
            continue
        try:
            yield {key: rel, "audio": standardize(*A.read_audio(found, d.max_seconds)).audio}
        except Skip as err:
            skipped[err.reason] += 1
            log.warning("skip %s (%s)", rel, err)


def _write_trials(d: DataConfig, seed: int, out: Path, clips: dict[str, list[SpeechClip]]) -> dict:
    t = d.trials
    skipped: Counter = Counter()
    extra: dict = {}
    if t.voxceleb1_list:
        trials = read_trials(t.voxceleb1_list)
        paths = sorted({p for tr in trials for p in (tr.path1, tr.path2)})
        with ShardedWriter(out / "trial_audio", schemas.TRIAL_AUDIO, d.max_shard_size) as w:
            kept = set()
            for row in _load_files(paths, t.voxceleb1_audio or "", d, "path", skipped):
                w.write(row)
                kept.add(row["path"])
        dropped = sum(1 for tr in trials if tr.path1 not in kept or tr.path2 not in kept)
        trials = [tr for tr in trials if tr.path1 in kept and tr.path2 in kept]
        origin = str(t.voxceleb1_list)
    else:
        utterances = [(c.id, c.speaker) for c in clips["test"]]
        n_target, n_non = trial_counts(utterances)
        if min(n_target, n_non) < t.per_class:
            log.warning("data.trials.per_class %d: the test split has only %d target and %d "
                        "non-target pairs; the list is capped to them", t.per_class, n_target, n_non)
        extra = {"per_class_requested": t.per_class,
                 "pairs_available": {"target": n_target, "nontarget": n_non}}
        trials = make_trials(utterances, t.per_class, seed)
        get = _AudioById(out / "corpus" / "test")
        needed = sorted({p for tr in trials for p in (tr.path1, tr.path2)})
        with ShardedWriter(out / "trial_audio", schemas.TRIAL_AUDIO, d.max_shard_size) as w:
            for path in needed:
                w.write({"path": path, "audio": get(path.removesuffix(".wav"))})
        dropped = 0
        origin = "embedded:test"
    labels = {tr.label for tr in trials}
    if labels != {0, 1}:
        what = "no trial" if not trials else "no " + ("target" if 1 not in labels else "non-target") + " trial"
        raise DataError(f"trial list {origin}: {what} left with readable audio "
                        f"({dropped} dropped for missing or unreadable audio)")
    write_trials(out / "trials.txt", trials)
    return {
        **extra,
        "list": origin,
        "target": sum(tr.label for tr in trials),
        "nontarget": sum(1 - tr.label for tr in trials),
        "dropped_missing_audio": dropped,
        "audio_skipped": dict(sorted(skipped.items())),
    }


def _write_qa(d: DataConfig, seed: int, out: Path, clips: dict[str, list[SpeechClip]]) -> dict:
    q = d.qa
    (out / "qa").mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    items: dict[str, list[QaItem]] = {}
    with ShardedWriter(out / "qa_audio", schemas.QA_AUDIO, d.max_shard_size) as w:
        if q.reasonaqa_train:
            loaded = {"train": read_reasonaqa(q.reasonaqa_train), "test": read_reasonaqa(q.reasonaqa_test or "")}
            paths = sorted({p for its in loaded.values() for it in its for p in (it.filepath1, it.filepath2) if p})
            kept = set()
            for row in _load_files(paths, q.reasonaqa_audio or "", d, "filepath", skipped):
                w.write(row)
                kept.add(row["filepath"])
            for split, its in loaded.items():
                items[split] = [it for it in its if it.filepath1 in kept and (not it.filepath2 or it.filepath2 in kept)]
                skipped["questions_dropped"] += len(its) - len(items[split])
            origin = str(q.reasonaqa_train)
        else:
            counts = {"train": q.train_questions, "test": q.test_questions}
            for i, (split, n) in enumerate(counts.items()):
                items[split], specs = plan_questions(clips[split], n, seed + 1000 + i, split)
                w.write_all(render_clips(specs, _AudioById(out / "corpus" / split), d.sample_rate))
            origin = "embedded"
    for split, its in items.items():
        write_reasonaqa(out / "qa" / f"{split}.json", its)
    return {
        "set": origin,
        **{f"{split}_questions": len(its) for split, its in items.items()},
        "types": sorted({it.taskname for its in items.values() for it in its}),
        "skipped": dict(sorted(skipped.items())),
    }


def run_prepare(data: DataConfig, seed: int, out: str | Path) -> PrepareResult:
    """Build everything under ``out`` (replaced atomically on success)."""
    with staged_output(out) as tmp:
        stats, clips = _write_corpus(data, seed, tmp)
        trials = _write_trials(data, seed, tmp, clips)
        qa = _write_qa(data, seed, tmp, clips)
    return PrepareResult(stats, clips, trials, qa)
