#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, from the repository root, with ../shared
# beside it (or AVSYNC_SHARED set). Prints, as JSON:
#   1. the fixtures on the GPU at fp32 (must match within 1e-2) and fp16 (reported),
#   2. the benchmark on CUDA: model throughput (windows/s), decode and end-to-end speed
#      (minutes of video per minute), peak memory, with the decoder measured as the limit.
# Needs ~10 minutes (the benchmark synthesises its clips first; --quick keeps it to the 60 s clip).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# The bench scripts import the installed package: install this checkout (no dependencies fetched).
python3 -m pip install -q --no-deps --no-build-isolation -e .
out=${OUT:-/tmp}

python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
python3 bench/device_fixtures.py --device cuda --precision fp32 | tee "$out/gpu_fixtures_fp32.json"
python3 bench/device_fixtures.py --device cuda --precision fp16 | tee "$out/gpu_fixtures_fp16.json"
python3 bench/run.py --device cuda ${GPU_CHECK_QUICK:+--quick} | tee "$out/gpu_bench.json"
