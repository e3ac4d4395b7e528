#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, from the repository root, with ../shared
# beside it (or AVSYNC_SHARED set). Prints, as JSON:
#   1. the fixtures on the GPU at fp32 (must match within 1e-2) and fp16 (reported),
#   2. the benchmark on CUDA: model throughput (windows/s), decode and end-to-end speed
#      (minutes of video per minute), peak memory, with the decoder measured as the limit,
#   3. a batch of 20 H.264 720p 10 s clips end to end (bench/batch_decode.py): in process, with 1
#      decode worker and with --decode-workers auto, beside the model alone in the same run.
# Needs ~10 minutes (the benchmark synthesises its clips first; --quick keeps it to the 60 s clip).
#
#   bash bench/gpu_check.sh                  # all three
#   bash bench/gpu_check.sh decode-workers   # 3 alone, ~2-3 minutes: the one short GPU call
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# The bench scripts import the installed package: install this checkout (no dependencies fetched).
python3 -m pip install -q --no-deps --no-build-isolation -e .
out=${OUT:-/tmp}

python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
# NVDEC (for a later --decoder gpu) needs the driver's video library; record whether it is here.
{ ldconfig -p 2>/dev/null | grep -E 'libnvcuvid|libnvidia-encode' || echo "no libnvcuvid in ldconfig"; } \
  | tee "$out/gpu_nvdec_libs.txt"
nproc | tee "$out/gpu_nproc.txt"

if [ "${1:-}" != "decode-workers" ]; then
  python3 bench/device_fixtures.py --device cuda --precision fp32 | tee "$out/gpu_fixtures_fp32.json"
  python3 bench/device_fixtures.py --device cuda --precision fp16 | tee "$out/gpu_fixtures_fp16.json"
  python3 bench/run.py --device cuda ${GPU_CHECK_QUICK:+--quick} | tee "$out/gpu_bench.json"
fi
AVSYNC_BENCH_DIR=${AVSYNC_BENCH_DIR:-/tmp/avsync-bench} \
  python3 bench/batch_decode.py --device cuda --clips 20 --seconds 10 --workers auto \
  | tee "$out/gpu_batch_decode.json"
