"""The prepare stage on every corpus source, broken inputs, determinism, trials and QA."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from semantic_bridge.config import params_from_dict
from semantic_bridge.base import audio as A
from semantic_bridge.base.errors import DataError
from semantic_bridge.base.evalsets import QaItem, read_reasonaqa, read_trials, write_reasonaqa
from semantic_bridge.corpus.prepare import run_prepare
from semantic_bridge.corpus.sources import SPLITS, assign_speaker_splits
from semantic_bridge.config import SplitConfig
from conftest import tone, write_wav


def prepare(params, out):
    return run_prepare(params.data, params.seed, out)


def rms_dbfs(audio: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.mean(np.square(audio, dtype=np.float64))), 1e-10)))


def load_corpus(out: Path) -> datasets.DatasetDict:
    return datasets.load_from_disk(str(out / "corpus"))


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- splits
def test_speaker_splits_are_disjoint_sized_and_seeded():
    speakers = [f"s{i}" for i in range(20)]
    cfg = SplitConfig(valid_speakers=2, test_speakers=3, dev_speakers=4)
    a = assign_speaker_splits(speakers, cfg, seed=1)
    assert Counter(a.values()) == {"train": 11, "valid": 2, "test": 3, "dev": 4}
    assert a == assign_speaker_splits(list(reversed(speakers)), cfg, seed=1)  # order-free
    assert a != assign_speaker_splits(speakers, cfg, seed=2)
    with pytest.raises(DataError, match="data.splits"):
        assign_speaker_splits(speakers[:9], cfg, seed=1)


# --------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, raw_params):
    from conftest import shrink

    params = params_from_dict(shrink(raw_params))
    out = tmp_path_factory.mktemp("syn") / "prepared"
    result = prepare(params, out)
    return params, out, result


def test_synthetic_corpus_layout_and_metrics(synthetic_run):
    params, out, result = synthetic_run
    corpus = load_corpus(out)
    assert set(corpus) == set(SPLITS)
    m = result.metrics(params.scale, params.data)
    assert m["scale"] == "embedded" and m["source"] == "synthetic"
    total = 0
    for split in SPLITS:
        ds = corpus[split]
        assert m["splits"][split]["utterances"] == len(ds)
        assert m["splits"][split]["speakers"] == len(set(ds["speaker"]))
        assert m["splits"][split]["skipped"] == {}
        total += len(ds)
        assert m["splits"][split]["hours"] == pytest.approx(sum(ds["seconds"]) / 3600, abs=1e-4)
    assert total == 8 * 3
    speakers = {s: set(corpus[s]["speaker"]) for s in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a != b:
                assert not speakers[a] & speakers[b]  # speaker-disjoint
    assert [len(speakers[s]) for s in ("valid", "test", "dev")] == [1, 3, 1]
    row = corpus["train"].with_format("numpy")[0]
    assert row["sample_rate"] == 24000 and row["audio"].dtype == np.float32
    assert len(row["audio"]) == pytest.approx(row["seconds"] * 24000, abs=1)
    # the synthesiser's word timings are kept, in order, inside the audio
    words = corpus["train"][0]["words"]
    assert [w["word"] for w in words] == corpus["train"][0]["text"].rstrip(".?").split()
    assert all(w["start"] <= w["end"] <= row["seconds"] + 1e-3 for w in words)


def test_synthetic_speakers_differ_in_voice_pitch_or_rate(synthetic_run):
    _, out, _ = synthetic_run
    corpus = load_corpus(out)
    voices = {}
    for split in SPLITS:
        for spk, voice in zip(corpus[split]["speaker"], corpus[split]["voice"]):
            voices.setdefault(spk, set()).add(voice)
    assert all(len(v) == 1 for v in voices.values())
    assert len({next(iter(v)) for v in voices.values()}) == len(voices)


def test_same_seed_gives_byte_identical_output_and_another_seed_does_not(synthetic_run, tmp_path):
    params, out, _ = synthetic_run
    again = tmp_path / "again"
    prepare(params, again)
    assert all_files(out) == all_files(again)
    raw = params_from_dict({**_as_dict(params), "seed": params.seed + 1})
    other = tmp_path / "other"
    prepare(raw, other)
    a, b = all_files(out), all_files(other)
    assert a.keys() == b.keys()
    assert a["corpus/train/data-00000-of-00001.arrow"] != b["corpus/train/data-00000-of-00001.arrow"]


def _as_dict(params):
    from semantic_bridge.config import to_dict

    return to_dict(params)


def test_trial_list_is_balanced_unique_and_over_test_speakers(synthetic_run):
    _, out, result = synthetic_run
    corpus = load_corpus(out)
    trials = read_trials(out / "trials.txt")
    test_ids = {f"{u}.wav": s for u, s in zip(corpus["test"]["id"], corpus["test"]["speaker"])}
    labels = Counter(t.label for t in trials)
    assert labels[0] == labels[1] == 6
    assert result.trials["target"] == result.trials["nontarget"] == 6
    pairs = set()
    for t in trials:
        assert t.path1 != t.path2  # no self-trials
        assert t.path1 in test_ids and t.path2 in test_ids  # only test speakers
        assert t.label == int(test_ids[t.path1] == test_ids[t.path2])
        pairs.add(frozenset((t.path1, t.path2)))
    assert len(pairs) == len(trials)
    line = (out / "trials.txt").read_text().splitlines()[0].split()
    assert line[0] in "01" and line[1].endswith(".wav") and line[1].count("/") == 1
    # every wav the list names has its audio
    audio = datasets.load_from_disk(str(out / "trial_audio"))
    assert set(audio["path"]) == {p for t in trials for p in (t.path1, t.path2)}


def test_qa_answers_are_knowable_from_the_audio(synthetic_run):
    _, out, result = synthetic_run
    clips = datasets.load_from_disk(str(out / "qa_audio")).with_format("numpy")
    audio = {clips[i]["filepath"]: clips[i]["audio"] for i in range(len(clips))}
    corpus = load_corpus(out)
    text = {u: t for s in SPLITS for u, t in zip(corpus[s]["id"], corpus[s]["text"])}
    for split, n in (("train", 14), ("test", 7)):
        items = read_reasonaqa(out / "qa" / f"{split}.json")
        assert len(items) == n == result.qa[f"{split}_questions"]
        for it in items:
            assert it.filepath1 in audio and (not it.filepath2 or it.filepath2 in audio)
            a = audio[it.filepath1]
            b = audio.get(it.filepath2)
            if it.taskname == "longer":
                assert it.answer == ("first" if len(a) > len(b) else "second")
            elif it.taskname == "louder":
                assert it.answer == ("first" if rms_dbfs(a) > rms_dbfs(b) else "second")
            elif it.taskname == "word_count":
                uid = it.filepath1.split("/speech/")[1].removesuffix(".wav")
                assert it.answer == str(len(text[uid].split()))
            elif it.taskname == "speech_or_not":
                assert (it.answer == "yes") == ("/speech/" in it.filepath1)
            elif it.taskname == "sound_kind":
                assert it.filepath1.endswith(f"_{it.answer}.wav")
    kinds = {it.taskname for it in read_reasonaqa(out / "qa" / "train.json")}
    assert {"speech_or_not", "voice_gender", "word_count", "same_voice", "longer", "louder"} <= kinds


# --------------------------------------------------------------------------- manifest
def make_broken_corpus(root: Path) -> list[dict]:
    """Six speakers with good files, plus one broken input of each kind."""
    rows = []
    for s in range(6):
        for u in range(3):
            path = write_wav(root / f"s{s}" / f"{u}.wav", tone(1.0 + 0.1 * u, 16000, 150 + 20 * s), 16000)
            rows.append({"id": f"s{s}-{u}", "audio": str(path.relative_to(root)), "text": f"hello number {u}", "speaker": f"s{s}"})
    broken = root / "broken"
    broken.mkdir()
    write_wav(broken / "stereo48k.wav", tone(1.0, 48000, channels=2), 48000)  # fixed, not skipped
    (broken / "empty.wav").write_bytes(b"")  # 0 bytes: libsndfile cannot open it
    write_wav(broken / "header_only.wav", np.zeros(0, np.float32), 16000)  # valid WAV, no samples
    (broken / "garbage.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    write_wav(broken / "silent.wav", np.zeros(16000, np.float32), 16000)
    write_wav(broken / "short.wav", tone(0.1, 16000), 16000)
    nan = tone(1.0, 16000)
    nan[100] = np.nan
    write_wav(broken / "nan.wav", nan, 16000, subtype="FLOAT")
    rows += [
        {"id": "b-stereo", "audio": "broken/stereo48k.wav", "text": "two channels", "speaker": "s0"},
        {"id": "b-empty", "audio": "broken/empty.wav", "text": "nothing", "speaker": "s0"},
        {"id": "b-header", "audio": "broken/header_only.wav", "text": "no samples", "speaker": "s0"},
        {"id": "b-garbage", "audio": "broken/garbage.wav", "text": "garbage", "speaker": "s0"},
        {"id": "b-silent", "audio": "broken/silent.wav", "text": "quiet", "speaker": "s0"},
        {"id": "b-short", "audio": "broken/short.wav", "text": "short", "speaker": "s0"},
        {"id": "b-nan", "audio": "broken/nan.wav", "text": "not a number", "speaker": "s0"},
        {"id": "b-missing", "audio": "broken/missing.wav", "text": "gone", "speaker": "s0"},
        {"id": "b-notext", "audio": "s0/0.wav", "text": "", "speaker": "s0"},
        {"id": "s0-0", "audio": "s0/1.wav", "text": "duplicate id", "speaker": "s0"},
        {"id": "b-nospeaker", "audio": "s0/0.wav", "text": "who", "speaker": ""},
    ]
    return rows


def manifest_params(tiny_raw, path):
    tiny_raw["data"]["source"] = "manifest"
    tiny_raw["data"]["manifest"]["path"] = str(path)
    tiny_raw["data"]["splits"] = {"valid_speakers": 1, "test_speakers": 2, "dev_speakers": 1}
    return params_from_dict(tiny_raw)


EXPECTED_SKIPS = {A.UNREADABLE: 3, A.EMPTY: 1, A.SILENT: 1, A.TOO_SHORT: 1, A.NOT_FINITE: 1,
                  A.NO_TEXT: 1, A.DUPLICATE_ID: 1}


def check_broken_run(params, out, result, n_good=18, unassigned=None):
    m = result.metrics(params.scale, params.data)
    s0_split = next(s for s in SPLITS if "s0" in set(load_corpus(out)[s]["speaker"]))
    skipped = m["splits"][s0_split]["skipped"]
    # libsndfile cannot open a 0-byte file: "unreadable", like garbage and missing files
    assert skipped == EXPECTED_SKIPS
    assert m["skipped_unassigned"] == (unassigned or {A.NO_SPEAKER: 1})
    assert sum(m["splits"][s]["utterances"] for s in SPLITS) == n_good + 1  # + the fixed stereo file
    assert m["splits"][s0_split]["fixed"] == {A.DOWNMIXED: 1, A.RESAMPLED: 4}
    corpus = load_corpus(out)
    stereo = corpus[s0_split].filter(lambda r: r["id"] == "b-stereo")
    assert len(stereo) == 1 and stereo[0]["sample_rate"] == 24000
    assert len(stereo[0]["audio"]) == 24000


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_manifest_source_with_broken_files(tmp_path, tiny_raw, fmt):
    rows = make_broken_corpus(tmp_path / "audio")
    path = tmp_path / "audio" / f"manifest.{fmt}"
    if fmt == "jsonl":
        lines = [json.dumps(r) for r in rows] + ["{not json", "[1, 2]"]
        path.write_text("\n".join(lines) + "\n")
    else:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "audio", "text", "speaker"])
            w.writeheader()
            w.writerows(rows)
    params = manifest_params(tiny_raw, path)
    out = tmp_path / "prepared"
    result = prepare(params, out)
    # the two malformed JSON lines have no speaker: counted as unassigned bad rows
    unassigned = {A.NO_SPEAKER: 1, "bad_row": 2} if fmt == "jsonl" else None
    check_broken_run(params, out, result, unassigned=unassigned)
    m = result.metrics(params.scale, params.data)
    assert (out / "trials.txt").is_file()
    assert "voice_gender" not in m["qa"]["types"]  # unknown genders: no such question


def test_manifest_errors_are_one_clear_line(tmp_path, tiny_raw):
    bad = tmp_path / "m.csv"
    bad.write_text("path,words\nx.wav,hi\n")
    with pytest.raises(DataError, match="lacks columns"):
        prepare(manifest_params(tiny_raw, bad), tmp_path / "out")
    with pytest.raises(DataError, match="not found"):
        prepare(manifest_params(tiny_raw, tmp_path / "none.jsonl"), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


# --------------------------------------------------------------------------- hf
def test_hf_source_from_disk_with_audio_feature(tmp_path, tiny_raw):
    rows = make_broken_corpus(tmp_path / "audio")
    root = tmp_path / "audio"

    def cell(rel):
        p = root / rel
        return {"bytes": p.read_bytes() if p.exists() else b"", "path": None}

    table = {
        "id": [r["id"] for r in rows],
        "audio": [cell(r["audio"]) for r in rows],
        "transcript": [r["text"] for r in rows],
        "spk": [r["speaker"] or None for r in rows],
    }
    cells = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    features = datasets.Features({"id": datasets.Value("string"), "audio": cells,
                                  "transcript": datasets.Value("string"), "spk": datasets.Value("string")})
    ds = datasets.Dataset.from_dict(table, features=features)
    # an Audio column, as real speech datasets have (cast at the Arrow level: no audio encoder needed)
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=None, decode=True))
    assert isinstance(ds.features["audio"], datasets.Audio)
    ds.save_to_disk(str(tmp_path / "hfds"))
    tiny_raw["data"]["source"] = "hf"
    tiny_raw["data"]["hf"].update(path=str(tmp_path / "hfds"), text_column="transcript", speaker_column="spk")
    tiny_raw["data"]["splits"] = {"valid_speakers": 1, "test_speakers": 2, "dev_speakers": 1}
    params = params_from_dict(tiny_raw)
    out = tmp_path / "prepared"
    result = prepare(params, out)
    check_broken_run(params, out, result)


def test_hf_source_through_load_dataset_on_a_folder_of_parquet_files(tmp_path, tiny_raw):
    """The load_dataset(name) code path, offline: a local folder laid out like a hub repo."""
    rows = [r for r in make_broken_corpus(tmp_path / "audio") if not r["id"].startswith("b-")]
    root = tmp_path / "audio"
    table = {
        "id": [r["id"] for r in rows],
        "audio": [{"bytes": (root / r["audio"]).read_bytes(), "path": r["audio"]} for r in rows],
        "text": [r["text"] for r in rows],
        "speaker_id": [r["speaker"] for r in rows],
    }
    repo = tmp_path / "hub_repo" / "data"
    repo.mkdir(parents=True)
    datasets.Dataset.from_dict(table).to_parquet(str(repo / "train-00000-of-00001.parquet"))
    tiny_raw["data"]["source"] = "hf"
    tiny_raw["data"]["hf"]["path"] = str(tmp_path / "hub_repo")
    tiny_raw["data"]["splits"] = {"valid_speakers": 1, "test_speakers": 2, "dev_speakers": 1}
    params = params_from_dict(tiny_raw)
    result = prepare(params, tmp_path / "prepared")
    m = result.metrics(params.scale, params.data)
    assert sum(m["splits"][s]["utterances"] for s in SPLITS) == len(rows) - 1  # one duplicate id
    assert m["splits"]["train"]["fixed"] == {A.RESAMPLED: m["splits"]["train"]["utterances"]}


def test_hf_source_errors(tmp_path, tiny_raw):
    datasets.Dataset.from_dict({"id": ["a"], "text": ["x"]}).save_to_disk(str(tmp_path / "ds"))
    tiny_raw["data"]["source"] = "hf"
    tiny_raw["data"]["hf"]["path"] = str(tmp_path / "ds")
    with pytest.raises(DataError, match=r"columns \['audio', 'speaker_id'\]"):
        prepare(params_from_dict(tiny_raw), tmp_path / "out")
    tiny_raw["data"]["hf"]["path"] = str(tmp_path / "no_such_dataset")
    with pytest.raises(DataError, match="data.hf.path: cannot load"):
        prepare(params_from_dict(tiny_raw), tmp_path / "out")


# --------------------------------------------------------------------------- real eval sets
def test_voxceleb_and_reasonaqa_loaders_by_path(tmp_path, tiny_raw):
    vox = tmp_path / "vox" / "wav"
    for spk in ("id10270", "id10271"):
        for utt in ("a/00001", "b/00002"):
            write_wav(vox / spk / f"{utt}.wav", tone(1.0, 16000, 200 if spk.endswith("0") else 300), 16000)
    trial_list = tmp_path / "vox" / "veri_test2.txt"
    trial_list.write_text(
        "1 id10270/a/00001.wav id10270/b/00002.wav\n"
        "0 id10270/a/00001.wav id10271/a/00001.wav\n"
        "0 id10271/b/00002.wav id10270/missing/00009.wav\n"
    )
    aqa = tmp_path / "aqa"
    write_wav(aqa / "clotho" / "x.wav", tone(2.0, 44100), 44100)
    write_wav(aqa / "clotho" / "y.wav", tone(1.0, 44100), 44100)
    write_reasonaqa(aqa / "train.json", [QaItem("clotho/x.wav", "clotho/y.wav", "Which is longer?", "first", "compare")])
    (aqa / "test.jsonl").write_text(
        json.dumps({"filepath1": "clotho/y.wav", "filepath2": "", "input": "Is it a tone?", "answer": "yes", "subtype": "detect"}) + "\n"
        + json.dumps({"filepath1": "clotho/gone.wav", "filepath2": "", "input": "?", "answer": "no", "subtype": "detect"}) + "\n"
    )
    d = tiny_raw["data"]
    d["trials"].update(voxceleb1_list=str(trial_list), voxceleb1_audio=str(vox))
    d["qa"].update(reasonaqa_train=str(aqa / "train.json"), reasonaqa_test=str(aqa / "test.jsonl"), reasonaqa_audio=str(aqa))
    params = params_from_dict(tiny_raw)
    out = tmp_path / "prepared"
    result = prepare(params, out)
    assert result.trials == {"list": str(trial_list), "target": 1, "nontarget": 1, "dropped_missing_audio": 1,
                             "audio_skipped": {"missing": 1}}
    assert len(read_trials(out / "trials.txt")) == 2
    audio = datasets.load_from_disk(str(out / "trial_audio"))
    assert sorted(audio["path"]) == ["id10270/a/00001.wav", "id10270/b/00002.wav", "id10271/a/00001.wav", "id10271/b/00002.wav"]
    assert len(audio[0]["audio"]) == 24000  # resampled once, here
    assert result.qa["train_questions"] == 1 and result.qa["test_questions"] == 1
    assert result.qa["skipped"] == {"missing": 1, "questions_dropped": 1}
    assert read_reasonaqa(out / "qa" / "test.json")[0].taskname == "detect"


def test_malformed_eval_files_name_file_and_line(tmp_path):
    bad = tmp_path / "trials.txt"
    bad.write_text("1 a.wav b.wav\n2 a.wav\n")
    with pytest.raises(DataError, match=r"trials.txt:2"):
        read_trials(bad)
    bad_qa = tmp_path / "qa.json"
    bad_qa.write_text(json.dumps([{"filepath1": "a.wav", "answer": "x"}]))
    with pytest.raises(DataError, match="item 0"):
        read_reasonaqa(bad_qa)
