#!/usr/bin/env bash
# The GPU figures of the README's "Paper scale" section, in one run (issue 14, item 3):
#   1. the data factory at paper size (random-weight WavLM-Large / Qwen2.5-1.5B teachers),
#   2. one Mimi-size training step (bf16-mixed on a GPU): audio-seconds per second, MFU, peak memory,
#   3. BridgeCodec against transformers' MimiModel, encode + decode throughput at Mimi's sizes.
# Everything it prints, with the card's name first, goes to $OUT/gpu_figures.txt.
#
#   bash benchmarks/gpu_figures.sh                 # on the GPU machine, in the activated .venv
#   N=32 PAPER_SIZE=0 BATCH=1 SEGMENT_SECONDS=1 THROUGHPUT_BATCH=1 bash benchmarks/gpu_figures.sh  # quick check of the script itself (CPU is fine)
#
# Knobs (environment): N (data-factory utterances, the large run has 4N; default 200), PAPER_SIZE
# (1: paper-size teachers, default), BATCH / SEGMENT_SECONDS (the train step's batch and segment length;
# default 16 x 12 s, Mimi's), THROUGHPUT_BATCH (default 16), PYTHON, OUT (default benchmarks/results).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
PAPER_SIZE=${PAPER_SIZE:-1}
BATCH=${BATCH:-16}
SECONDS_PER_SEGMENT=${SEGMENT_SECONDS:-12}
THROUGHPUT_BATCH=${THROUGHPUT_BATCH:-16}
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

factory_args=(--n "$N")
[[ "$PAPER_SIZE" == 1 ]] && factory_args+=(--paper-size)

{
    echo "# gpu_figures.sh, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: CPU run"
    "$PY" -c "import torch; print('torch', torch.__version__, '| device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')"
    echo
    echo "## 1. data factory: benchmarks/data_factory.py ${factory_args[*]}"
    "$PY" benchmarks/data_factory.py "${factory_args[@]}"
    echo
    echo "## 2. training step at Mimi size: batch $BATCH x $SECONDS_PER_SEGMENT s"
    "$PY" benchmarks/train_step.py --batch-size "$BATCH" --seconds "$SECONDS_PER_SEGMENT" --phase both
    echo
    echo "## 3. BridgeCodec vs MimiModel: batch $THROUGHPUT_BATCH x 10 s"
    "$PY" benchmarks/codec_throughput.py --seconds 10 --batch "$THROUGHPUT_BATCH" --repeats 10
} 2>&1 | tee "$OUT/gpu_figures.txt"
echo "written: $OUT/gpu_figures.txt"
