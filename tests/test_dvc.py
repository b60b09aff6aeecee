"""End to end through DVC: the real dvc.yaml on the real params.yaml (shrunk), then
push to a remote and pull into a fresh clone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import yaml

from conftest import REPO, shrink

pytestmark = pytest.mark.slow
EVALS = {"eval_wer", "eval_eer", "eval_swap", "eval_edit", "eval_probe", "eval_quality", "disentanglement", *(
    f"eval_reasoning@{e}" for e in ("htsat", "mimi_semantic", "mimi_full", "bridge"))}
EVAL_METRICS = ("wer", "eer", "swap", "edit", "probe", "quality", "disentanglement", "reasoning/htsat", "reasoning/mimi_semantic",
                "reasoning/mimi_full", "reasoning/bridge")


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1",
            # the project copies src/, not the fetched weights: point it at this checkout's
            "SEMANTIC_BRIDGE_WEIGHTS": os.environ.get("SEMANTIC_BRIDGE_WEIGHTS", str(REPO / ".weights"))}


def sh(*cmd, cwd, check=True, timeout=900):
    proc = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def dvc(*args, cwd, check=True, timeout=900):
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check, timeout=timeout)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory, raw_params):
    """A git + DVC project made of this repo's pipeline files and DVC config (its default
    remote re-pointed at a temp dir, so tests never touch the user's remote)."""
    work = tmp_path_factory.mktemp("dvc") / "work"
    work.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=work)
    dvc("init", "-q", cwd=work)
    for name in ("dvc.yaml", "stages", "src", ".dvc/config", ".dvcignore", ".gitignore"):
        src, dst = REPO / name, work / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    (work / "params.yaml").write_text(yaml.safe_dump(shrink(raw_params), sort_keys=False))
    remote = work.parent / "remote"
    dvc("remote", "modify", "local", "url", str(remote), cwd=work)
    # as in any clone there is a commit (DVCLive 3 fails in a git repo without one)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "pipeline code", cwd=work)
    return work, remote


def test_repro_status_push_and_pull_into_a_fresh_clone(project):
    work, remote = project
    dvc("repro", cwd=work)
    assert (work / "metrics/prepare.json").is_file()
    assert (work / "data/prepared/corpus/train/state.json").is_file()
    merged = datasets.load_from_disk(str(work / "data/merged"))
    assert set(merged) == {"train", "valid", "test"} and merged["train"].num_rows > 0
    for name in ("align", "wavlm", "qwen", "merge", "train", *EVAL_METRICS):
        assert json.loads((work / f"metrics/{name}.json").read_text())["scale"] == "embedded"
    assert (work / "models/codec.pt").is_file() and (work / "plots/train/losses/mel/loss.tsv").is_file()
    # evaluations name the models that produced them
    assert json.loads((work / "metrics/wer.json").read_text())["models"]["codec"]["checkpoint"] == "models/codec.pt"
    assert json.loads((work / "metrics/reasoning/bridge.json").read_text())["models"]["encoder"]["model"] == "models/codec.pt"
    assert (work / "plots/eval/det/cb0.png").is_file() and (work / "data/eval/swap/pair00_swap_cb0_1.wav").is_file()
    assert "up to date" in dvc("status", cwd=work)
    again = dvc("repro", cwd=work)
    assert "didn't change, skipping" in again and "Running stage" not in again

    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "pipeline", cwd=work)
    dvc("push", cwd=work)
    assert any(remote.rglob("*"))

    clone = work.parent / "clone"
    sh("git", "clone", "-q", str(work), str(clone), cwd=work.parent)
    assert not (clone / "data").exists()
    dvc("pull", cwd=clone)
    assert tree(clone / "data/prepared") == tree(work / "data/prepared")
    assert tree(clone / "data/merged") == tree(work / "data/merged")
    assert "up to date" in dvc("status", cwd=clone)


@pytest.fixture()
def s3_server():
    """A real S3-compatible server on localhost (moto's server mode) with an empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="test-key",
                      aws_secret_access_key="test-secret", region_name="us-east-1")
    s3.create_bucket(Bucket="semantic-bridge")
    try:
        yield url, s3
    finally:
        server.stop()


def test_push_and_pull_through_an_s3_remote(project, s3_server):
    """The README's S3 recipe against a real S3 server: the remote's URL and endpoint in the
    committed .dvc/config, the credentials in the git-ignored .dvc/config.local; push, then a
    fresh clone with its own credentials pulls the same outputs."""
    work, _ = project
    url, s3 = s3_server
    dvc("repro", cwd=work)
    dvc("remote", "add", "s3store", "s3://semantic-bridge/dvc", cwd=work)
    dvc("remote", "modify", "s3store", "endpointurl", url, cwd=work)
    for key, value in (("access_key_id", "test-key"), ("secret_access_key", "test-secret")):
        dvc("remote", "modify", "--local", "s3store", key, value, cwd=work)
    assert "test-secret" not in (work / ".dvc/config").read_text()
    assert "config.local" not in sh("git", "status", "--porcelain", "--ignored=no", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "s3 remote", "--allow-empty", cwd=work)
    dvc("push", "-r", "s3store", cwd=work)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="semantic-bridge").get("Contents", [])]
    assert keys and all(k.startswith("dvc/files/md5/") for k in keys)

    clone = work.parent / "s3clone"
    sh("git", "clone", "-q", str(work), str(clone), cwd=work.parent)
    assert not (clone / ".dvc/config.local").exists()  # credentials never travel with git
    for key, value in (("access_key_id", "test-key"), ("secret_access_key", "test-secret")):
        dvc("remote", "modify", "--local", "s3store", key, value, cwd=clone)
    dvc("pull", "-r", "s3store", cwd=clone)
    assert tree(clone / "data/merged") == tree(work / "data/merged")
    assert (clone / "models/codec.pt").read_bytes() == (work / "models/codec.pt").read_bytes()
    assert "up to date" in dvc("status", cwd=clone)


@contextlib.contextmanager
def edited_params(work: Path, edit):
    """params.yaml changed by ``edit(raw)`` inside the block, restored after it."""
    path = work / "params.yaml"
    original = path.read_text()
    raw = yaml.safe_load(original)
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)


def test_params_only_invalidate_the_stages_that_read_them(project):
    work, _ = project
    dvc("repro", cwd=work)
    training_knobs = lambda raw: (raw["codebooks"].update(dropout=0.3), raw["train"].update(steps=7))  # noqa: E731
    with edited_params(work, training_knobs):  # training knobs leave the data alone
        assert changed_stages(dvc("status", cwd=work)) == {"train"}
    with edited_params(work, lambda raw: raw["data"].update(min_seconds=0.6)):
        status = dvc("status", cwd=work)
        assert "prepare" in status and "modified" in status


def changed_stages(status: str) -> set[str]:
    """Stage names in `dvc status` output (unindented ``name:`` lines), but ``check_params``,
    which every params edit re-runs (in a second, without torch: its output never changes)."""
    return {line[:-1] for line in status.splitlines()
            if line.endswith(":") and not line[0].isspace()} - {"check_params"}


@pytest.mark.parametrize("edit, expected", [
    (lambda raw: raw["teachers"]["wavlm"].update(layer=7), {"wavlm", "merge"}),
    (lambda raw: raw["teachers"]["llm"].update(layer=20), {"qwen", "merge"}),
    # downstream stages re-run when align's outputs change; status lists direct changes only
    (lambda raw: raw["align"].update(backend="given"), {"align"}),
])
def test_teacher_and_align_params_rerun_only_their_stages_and_merge(project, edit, expected):
    work, _ = project
    dvc("repro", cwd=work)
    with edited_params(work, edit):
        assert changed_stages(dvc("status", cwd=work)) == expected


def test_committed_dvc_lock_matches_the_code_and_params():
    """dvc.lock on main must describe the committed code and params: after a change, run
    `make repro` and commit dvc.lock with it. Pipeline outputs may be absent here (a fresh
    clone): only deps that are files in git, and params, are checked."""
    status = json.loads(dvc("status", "--json", cwd=REPO))
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                continue
            deps = {path: what for path, what in change.get("changed deps", {}).items()
                    if not path.startswith(("data/", "models/"))}
            if deps or change.get("changed params"):
                stale[stage] = {**deps, **change.get("changed params", {})}
    assert not stale, f"dvc.lock is stale, run `make repro` and commit it: {stale}"


def test_eval_params_rerun_only_their_evaluation(project):
    work, _ = project
    dvc("repro", cwd=work)
    with edited_params(work, lambda raw: raw["eval"]["swap"].update(pairs=2)):
        assert changed_stages(dvc("status", cwd=work)) == {"eval_swap"}
    with edited_params(work, lambda raw: raw["eval"]["reasoning"].update(steps=2)):
        assert changed_stages(dvc("status", cwd=work)) == {s for s in EVALS if "reasoning" in s}
    with edited_params(work, lambda raw: raw["eval"]["wer"].update(max_utterances=2)):  # the ASR
        assert changed_stages(dvc("status", cwd=work)) == {"eval_wer", "eval_swap", "eval_quality", "eval_edit"}
    with edited_params(work, lambda raw: raw["eval"]["edit"].update(edits=2)):
        assert changed_stages(dvc("status", cwd=work)) == {"eval_edit"}
    with edited_params(work, lambda raw: raw["eval"]["quality"].update(utterances=1)):
        assert changed_stages(dvc("status", cwd=work)) == {"eval_quality"}


def test_an_experiment_on_a_codebook_knob_reruns_training_and_evaluations_only(project):
    """`dvc exp run -S codebooks.dropout=0.3` re-runs train and the evaluations of the codec, no
    data stage and no evaluation of another encoder; `dvc metrics diff` and `dvc plots diff`
    compare the two runs."""
    work, _ = project
    dvc("repro", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "baseline", "--allow-empty", cwd=work)
    out = dvc("exp", "run", "-S", "codebooks.dropout=0.3", cwd=work)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    expected = {"check_params", "train"} | EVALS - {"eval_reasoning@htsat", "eval_reasoning@mimi_semantic",
                                                "eval_reasoning@mimi_full"}
    # disentanglement only reads metrics files: DVC skips it when they came out identical
    assert expected - {"disentanglement"} <= ran <= expected, out
    diff = json.loads(dvc("metrics", "diff", "--json", cwd=work))
    assert "metrics/train.json" in diff and diff["metrics/train.json"]
    side_by_side = json.loads(dvc("metrics", "diff", "--all", "--json", cwd=work))
    assert all(f"metrics/{name}.json" in side_by_side for name in EVAL_METRICS)
    plots = dvc("plots", "diff", "--json", cwd=work)
    assert "plots/eval/wer.csv" in plots and "plots/train/codebooks.csv" in plots


@pytest.mark.parametrize("edit, key", [
    (lambda raw: raw["train"].update(betas=[0.5]), "train.betas"),
    (lambda raw: raw.update(codebook={"dropout": 0.3}), "Key 'codebook' not in 'Params'"),  # a typo
])
def test_a_bad_param_stops_repro_before_any_output_is_removed(project, edit, key):
    """``check_params`` depends on every key and every stage depends on it: a bad value (or a
    misspelled section no stage reads) stops `dvc repro` first, and DVC never deletes the
    git-tracked metrics and plots of the stage that would have failed."""
    work, _ = project
    dvc("repro", cwd=work)
    before = tree(work / "plots/train"), (work / "metrics/train.json").read_bytes()
    with edited_params(work, edit):
        out = dvc("repro", cwd=work, check=False)
        assert "error: params.yaml: " in out and key in out, out[-2000:]
        assert "Running stage 'train'" not in out and "Running stage 'prepare'" not in out
        assert (tree(work / "plots/train"), (work / "metrics/train.json").read_bytes()) == before


def _exp_rows(show: list) -> list[dict]:
    """``dvc exp show --json`` -> one dict per experiment: its params and disentanglement groups."""
    rows = []
    for commit in show:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                groups = ((data.get("metrics") or {}).get("metrics/disentanglement.json") or {}).get(
                    "data", {}).get("groups")
                rows.append({"params": params, "groups": groups})
    return rows


@pytest.mark.timeout(3600)  # a repro and three experiments through the queue: more than the 900 s default
def test_a_queued_sweep_runs_and_exp_show_has_the_disentanglement_columns(project):
    """The README's sweep: `dvc exp run --queue` over a teacher layer and codebook dropouts,
    `dvc queue start`, then `dvc exp show` with the disentanglement table as columns."""
    work, _ = project
    dvc("repro", cwd=work, timeout=1800)  # from nothing when this test runs alone
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "sweep baseline", "--allow-empty", cwd=work)
    dvc("exp", "run", "--queue", "-S", "teachers.wavlm.layer=3", cwd=work)
    dvc("exp", "run", "--queue", "-S", "codebooks.dropout=0.1,0.5", cwd=work)  # a grid: 2 runs
    # `dvc queue start` spawns workers that inherit its stdout/stderr and outlive it: captured
    # through pipes (as `sh` does) the call would wait for the idle workers, so log to a file
    log = work.parent / "queue-start.log"
    with log.open("w") as out:
        starter = subprocess.Popen([sys.executable, "-m", "dvc", "queue", "start", "--jobs", "2"],
                                   cwd=work, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 1800
        status = ""
        while time.time() < deadline:
            time.sleep(10)
            status = dvc("queue", "status", cwd=work)
            if not any(word in status for word in ("Queued", "Running")):
                break
        else:
            raise AssertionError(f"the queue did not finish:\n{status}\n{log.read_text()}")
    finally:  # never leave workers behind, pass or fail
        dvc("queue", "stop", "--kill", cwd=work, check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            starter.wait(timeout=60)
        if starter.poll() is None:
            starter.kill()
    rows = [r for r in _exp_rows(json.loads(dvc("exp", "show", "--json", cwd=work))) if r["groups"]]
    swept = {(r["params"]["teachers"]["wavlm"]["layer"], r["params"]["codebooks"]["dropout"]) for r in rows}
    params = yaml.safe_load((work / "params.yaml").read_text())
    default_layer, default_dropout = params["teachers"]["wavlm"]["layer"], params["codebooks"]["dropout"]
    assert {(3, default_dropout), (default_layer, 0.1), (default_layer, 0.5)} <= swept, (swept, status)
    for r in rows:
        for group in ("cb0", "cb0_1", "cb2_8"):
            # f0_corr is null (absent from the JSON) when the shrunk codec leaves no frame voiced in both
            assert set(r["groups"][group]) >= {"wer", "probe_top1", "speaker_eer"}, r["groups"][group]
    table = dvc("exp", "show", "--csv", "--drop", ".*", "--keep",
                r"Experiment|teachers\.wavlm\.layer|codebooks\.dropout|groups\.(cb0|cb2_8)\.(wer|speaker_eer)",
                cwd=work)
    header = table.splitlines()[0]
    assert "codebooks.dropout" in header and "groups.cb0.speaker_eer" in header, table[:2000]
