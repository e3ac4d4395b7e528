"""A batch of short clips end to end: decode in this process vs in 1 and N worker processes.

    python bench/batch_decode.py                                  # CPU: 20 clips, N = auto
    python bench/batch_decode.py --device cuda                    # the GPU run (bench/gpu_check.sh)
    python bench/batch_decode.py --clips 4 --workers 2 --threads 1   # a small run on a busy CPU

Makes ``--clips`` H.264 + AAC clips of ``--seconds`` at 720p (cached in ``--dir``), builds the
full-size SparseSync (21 classes, random weights: speed does not depend on the values, optimised
path), and in ONE process measures, in this order:

- ``model_alone``: the model on one batch of random windows, repeated (windows/s), half before
  the batch runs and half after, so a drift of a shared machine weighs on both alike;
- ``decode``: one clip decoded into windows in this process (CPU-seconds per window, all
  threads), and from it ``cpu_decode_limit_windows_per_s`` = cores / CPU-s per window: no
  schedule decodes faster on this machine's cores;
- ``e2e_in_process`` (no ``--decode-workers``: one file at a time, a decode thread),
  ``e2e_workers_1`` and ``e2e_workers_N``: ``iter_predictions`` over the whole batch, windows/s,
  with the workers' peak RSS and this process's.

Logits of the 1- and N-worker runs are compared (``identical_1_vs_N``: bit for bit on CPU). Prints
one JSON object. Needs nothing but the package and this folder (``model_speed.py``, ``run.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_clips(folder: Path, n: int, seconds: float, width: int, height: int) -> list[Path]:
    from run import synthesize  # bench/run.py: testsrc2 + beeps, x264 ultrafast, AAC

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip_{height}p_{seconds:g}s_{i:03d}.mp4" for i in range(n)]
    todo = [p for p in paths if not p.exists()]
    if todo:
        print(f"synthesising {len(todo)} clip(s) in {folder} ...", file=sys.stderr)
        with ThreadPoolExecutor(max(1, min(len(todo), os.cpu_count() or 1))) as ex:
            list(ex.map(lambda p: synthesize(p, width, height, seconds), todo))
    return paths


def build_model(device: str, precision: str):
    from model_speed import full_sparsesync

    from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
    from sparsesync_cli.models.fast import optimize_for_inference
    from sparsesync_cli.sync_model import ModelSetup, SyncModel, resolve_precision

    net = optimize_for_inference(full_sparsesync(), device).to(device).eval()
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    setup = ModelSetup("bench", "sparsesync", None, grid, SPARSESYNC_GEOMETRY, device,
                       resolve_precision(precision, device))  # fmt: skip
    return SyncModel(net, setup)


def model_alone(model, batch: int, reps: int) -> tuple[float, int]:
    """(seconds, windows) of ``reps`` model calls on ``batch`` random windows."""
    import numpy as np
    import torch

    from sparsesync_cli.heap import heap_reuse

    frames = np.random.default_rng(0).integers(0, 255, (batch, 125, 3, 224, 224), dtype=np.uint8)
    audio = np.random.default_rng(1).standard_normal((batch, 80_000)).astype(np.float32)
    sync = torch.cuda.synchronize if model.setup.device.startswith("cuda") else (lambda: None)
    with heap_reuse():
        t = time.perf_counter()
        for _ in range(reps):
            model.logits(frames, audio)
        sync()
        return time.perf_counter() - t, reps * batch


def decode_cost(path: Path, geometry) -> dict:
    """One clip decoded into model windows here (the decode workers' own work)."""
    from sparsesync_cli.analysis.predict import PredictOptions
    from sparsesync_cli.distributed.work import PredictJob
    from sparsesync_cli.sync_model import ModelSetup

    setup = ModelSetup("bench", "sparsesync", None, (0.0,), geometry, "cpu", "fp32")
    job = PredictJob(PredictOptions(), setup)
    t, c = time.perf_counter(), cpu_s()
    n = sum(len(p["frames"]) for p in job.decode(str(path)))
    wall, cpu = time.perf_counter() - t, cpu_s() - c
    return {"windows": n, "s_per_window": wall / n, "cpu_s_per_window": cpu / n}


def e2e(paths: list[Path], model, batch: int, workers: int | None) -> tuple[dict, list]:
    from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions
    from sparsesync_cli.distributed.batched_run import predict_pooled

    options = PredictOptions(batch_size=batch)
    stats: dict = {}
    t = time.perf_counter()
    if workers is None:
        results = list(iter_predictions(paths, model, options))
    else:
        files = [str(p) for p in paths]
        results = list(predict_pooled(files, model, options, workers=workers, pool_stats=stats))
    wall = time.perf_counter() - t
    failed = [r.error for r in results if not r.ok]
    n = sum(len(r.windows) for r in results if r.ok)
    out = {"windows": n, "seconds": round(wall, 2), "windows_per_s": round(n / wall, 3), "failed": failed}
    if workers is not None:
        out["workers"] = workers
        rss = stats.get("peak_rss_mb") or []
        out["worker_peak_rss_mb"] = round(max(rss)) if rss else None
        out["worker_restarts"] = stats.get("restarts")
    logits = [w.logits for r in results if r.ok for w in r.windows]
    return out, logits


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    ap.add_argument("--batch-size", type=int, default=None, help="windows per model call (CPU 1, CUDA 8)")
    ap.add_argument("--clips", type=int, default=20, help="clips in the batch (default 20)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each clip (default 10)")
    ap.add_argument("--height", type=int, default=720, help="720 (1280x720) or 1080 (1920x1080)")
    ap.add_argument("--workers", default="auto", help="N for the N-worker run, or auto")
    ap.add_argument("--model-reps", type=int, default=None, help="model-alone calls (4 CPU, 40 CUDA)")
    ap.add_argument("--no-in-process", action="store_true", help="skip the in-process baseline")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("AVSYNC_BENCH_DIR", "/tmp/avsync-bench")))
    args = ap.parse_args()

    import torch

    from sparsesync_cli.distributed.batched_run import resolve_workers
    from sparsesync_cli.distributed.decode_pool import available_cores

    cuda = args.device.startswith("cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch_size or (8 if cuda else 1)
    reps = args.model_reps or (40 if cuda else 4)
    width = {720: 1280, 1080: 1920}[args.height]
    paths = make_clips(args.dir / "batch", args.clips, args.seconds, width, args.height)
    model = build_model(args.device, args.precision)
    workers = resolve_workers(args.workers, model)
    report: dict = {
        "avsync_bench_batch_decode": 1,
        "machine": {
            "cores": available_cores(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": args.device,
            "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        },
        "batch": {"clips": len(paths), "seconds": args.seconds, "size": f"{width}x{args.height}",
                  "codec": "h264 + aac", "batch_size": batch, "precision": model.setup.precision},
    }  # fmt: skip
    model_alone(model, batch, 1)  # warm-up: first-call allocations, cuDNN autotuning
    t0, n0 = model_alone(model, batch, max(1, reps // 2))
    print("decode cost ...", file=sys.stderr)
    d = decode_cost(paths[0], model.geometry)
    runs: dict = {}
    if not args.no_in_process:
        print("end to end, in process ...", file=sys.stderr)
        runs["e2e_in_process"], _ = e2e(paths, model, batch, None)
    print("end to end, 1 worker ...", file=sys.stderr)
    runs["e2e_workers_1"], logits_1 = e2e(paths, model, batch, 1)
    print(f"end to end, {workers} workers ...", file=sys.stderr)
    runs[f"e2e_workers_{workers}"], logits_n = e2e(paths, model, batch, workers)
    t1, n1 = model_alone(model, batch, max(1, reps - reps // 2))
    model_wps = (n0 + n1) / (t0 + t1)
    cores = available_cores()
    report["model_alone"] = {"windows_per_s": round(model_wps, 3), "s_per_window": round(1 / model_wps, 4)}
    report["decode"] = {
        "cpu_s_per_window": round(d["cpu_s_per_window"], 3),
        "s_per_window_one_file": round(d["s_per_window"], 3),
        "cpu_decode_limit_windows_per_s": round(cores / d["cpu_s_per_window"], 2),
    }
    report.update(runs)
    report[f"identical_1_vs_{workers}"] = logits_1 == logits_n
    report["main_peak_rss_mb"] = round(peak_rss_mb())
    report["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
