"""Evaluation sets: speaker-verification trial lists (VoxCeleb1-O format) and audio QA
in ReasonAQA's JSON format. Readers for the real files, writers and the generator of
the embedded trial list."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .errors import DataError


# --------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Trial:
    label: int  # 1 = same speaker (target), 0 = different speakers
    path1: str  # e.g. "id10270/x6uYqmx31kE/00001.wav", or "spk03/0007.wav" (embedded)
    path2: str


def read_trials(path: str | Path) -> list[Trial]:
    """Read ``label path1 path2`` lines (VoxCeleb1-O: ``1 id10270/.../00001.wav id10270/...``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: trial list not found")
    trials = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(f"{path}:{n}: expected '<0|1> <wav> <wav>', got {line[:80]!r}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise DataError(f"{path}: no trials")
    return trials


def write_trials(path: str | Path, trials: Iterable[Trial]) -> None:
    Path(path).write_text("".join(f"{t.label} {t.path1} {t.path2}\n" for t in trials))


def utterance_path(utt_id: str) -> str:
    """Trial-list path of a corpus utterance: ids are ``speaker/utt``, paths ``speaker/utt.wav``."""
    return f"{utt_id}.wav"


def make_trials(utterances: list[tuple[str, str]], per_class: int, seed: int) -> list[Trial]:
    """A trial list over ``(utt_id, speaker)`` pairs: up to ``per_class`` target trials (same
    speaker, two different utterances) and up to ``per_class`` non-target trials (different
    speakers), each unordered pair at most once. A class gets fewer when fewer such pairs
    exist (``trial_counts`` says how many do): unbalanced speakers never make it loop."""
    rng = np.random.default_rng(seed)
    ids = sorted(utterances)
    by_spk: dict[str, list[str]] = {}
    for uid, spk in ids:
        by_spk.setdefault(spk, []).append(uid)
    if len(by_spk) < 2:
        raise DataError(f"trial list needs at least 2 speakers, got {len(by_spk)}")
    targets = [(a, b) for us in by_spk.values() for i, a in enumerate(us) for b in us[i + 1 :]]
    chosen = rng.choice(len(targets), size=min(per_class, len(targets)), replace=False)
    target_pairs = [targets[i] for i in chosen]
    n_non = trial_counts(utterances)[1]
    want = min(per_class, n_non)
    nontarget: dict[tuple[str, str], None] = {}
    all_ids = [uid for uid, _ in ids]
    speaker_of = dict(ids)
    if want > n_non // 2:  # a dense draw: enumerate the pairs, sample without replacement
        pool = [(a, b) for i, a in enumerate(all_ids) for b in all_ids[i + 1:]
                if speaker_of[a] != speaker_of[b]]
        nontarget = dict.fromkeys(pool[i] for i in rng.choice(len(pool), size=want, replace=False))
    while len(nontarget) < want:  # sparse: rejection sampling ends fast (most draws are new)
        a, b = (all_ids[i] for i in rng.choice(len(all_ids), size=2, replace=False))
        if speaker_of[a] != speaker_of[b]:
            nontarget.setdefault((min(a, b), max(a, b)), None)
    trials = [Trial(1, utterance_path(a), utterance_path(b)) for a, b in target_pairs]
    trials += [Trial(0, utterance_path(a), utterance_path(b)) for a, b in nontarget]
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


def trial_counts(utterances: list[tuple[str, str]]) -> tuple[int, int]:
    """(target, non-target) unordered pairs that exist among ``(utt_id, speaker)`` pairs."""
    sizes = np.array(list(Counter(spk for _, spk in set(utterances)).values()), dtype=np.int64)
    n = int(sizes.sum())
    same = int((sizes * (sizes - 1) // 2).sum())
    return same, n * (n - 1) // 2 - same


# --------------------------------------------------------------------------- audio QA
TYPE_KEYS = ("taskname", "type", "question_type", "subtype")


@dataclass(frozen=True)
class QaItem:
    """One ReasonAQA-style question; ``filepath2`` is "" for one-clip questions."""

    filepath1: str
    filepath2: str
    input: str
    answer: str
    taskname: str

    def to_json(self) -> dict:
        return asdict(self)


def read_reasonaqa(path: str | Path) -> list[QaItem]:
    """Read a ReasonAQA JSON file (a list of objects, or JSON lines). The question type is
    taken from the first of ``taskname``, ``type``, ``question_type``, ``subtype`` present."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ReasonAQA file not found")
    text = path.read_text()
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: neither a JSON list nor JSON lines ({err.msg}, line {err.lineno})") from None
    if isinstance(rows, dict):  # some releases wrap the list: {"data": [...]}
        rows = next((v for v in rows.values() if isinstance(v, list)), None)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of questions")
    items = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not all(k in row for k in ("filepath1", "input", "answer")):
            raise DataError(f"{path}: item {n} lacks filepath1/input/answer")
        kind = next((str(row[k]) for k in TYPE_KEYS if row.get(k)), "unknown")
        items.append(QaItem(str(row["filepath1"]), str(row.get("filepath2") or ""),
                            str(row["input"]), str(row["answer"]), kind))
    return items


def write_reasonaqa(path: str | Path, items: Iterable[QaItem]) -> None:
    Path(path).write_text(json.dumps([item.to_json() for item in items], indent=1) + "\n")


def resolve_audio(root: str | Path, relpath: str) -> Optional[Path]:
    """``root/relpath`` if it exists (evaluation lists name files relative to a root)."""
    path = Path(root) / relpath
    return path if path.is_file() else None
