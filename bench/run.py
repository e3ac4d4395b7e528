"""The avsync benchmark: model, decode and end-to-end `predict` speed, and memory, in ONE JSON object.

    python bench/run.py                 # CPU, ~15-20 min on 2 cores; clips cached in /tmp/avsync-bench
    python bench/run.py --quick         # the 60 s clip only (~5 min)
    python bench/run.py --device cuda   # the same on a GPU (bench/gpu_check.sh runs this)
    python bench/run.py --quick --clip-seconds 20 --model-runs 0 --no-eager-e2e   # busy machine

Needs nothing but the installed package (`pip install -e .`): the full-size SparseSync (21
classes) is built with random weights (speed does not depend on the values), and the test videos
are synthesised with the ffmpeg binary avsync uses (H.264 + AAC, 30 fps): a 60 s 720p clip and a
10-minute 1080p clip.

Every figure is measured in this run, beside its baseline:
- ``model``: seconds per 5 s window of the plain eager model and of the optimised path, total and
  S3D alone, interleaved in one process (bench/model_speed.py), and their ratio;
- per clip, in a fresh process each (so peak RSS is that run's own):
  ``decode``: MediaReader alone over the whole file, seconds per minute of video;
  ``predict_<variant>``: ``predict_file`` on the whole file (decode thread + model + aggregation):
  seconds per minute of video, per window, the real-time factor (processing seconds per second
  of video), and ``e2e_over_model``: end-to-end seconds per window over the model's own seconds
  per window measured in the same process, half before the clip and half after (1.0 = decoding
  fully hidden), under the same allocator settings as predict's window loop
  (sparsesync_cli/heap.py). The process is warm, as for every file after the first of a batch (a
  warm-up window first, one heap kept from it to the end); the first window's decoding counts.
  CPU seconds per window split into user and system time, with the minor page faults, for the
  whole run and for the model alone (``model_*``);
- ``cpu_bound_e2e_over_model``: on CPU, decoding and the model share the same cores, so no
  pipeline can beat (model CPU-seconds + decode CPU-seconds per window) / cores; this is that
  floor, from the CPU times measured above.
The eager baseline runs end to end on the 60 s clip only (its per-window cost does not depend on
the clip's length; on the 10-minute clip it would take ~12 more minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

MODEL_REPS = 6  # timed model-alone calls per clip, half before the clip and half after

CLIPS = {  # name: (width, height, seconds)
    "720p_60s": (1280, 720, 60),
    "1080p_10min": (1920, 1080, 600),
}


def synthesize(path: Path, width: int, height: int, seconds: float) -> None:
    """A clip with moving pictures and sound, H.264 (x264 ultrafast, 2 s GOP) + 48 kHz AAC."""
    from sparsesync_cli.media.ffmpeg import run_ffmpeg

    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    run_ffmpeg(
        [
            "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:beep_factor=4",
            "-t", f"{seconds:g}", "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
            "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(tmp),
        ],
        tmp,
    )  # fmt: skip
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    """This process's peak RSS in MB (VmHWM: reset by exec, unlike an inherited ru_maxrss)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_times(since: dict | None = None) -> dict:
    """This process's CPU seconds (user, system, both) and minor page faults, all threads;
    with ``since``: the difference from that earlier reading."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    now = {"user": r.ru_utime, "sys": r.ru_stime, "cpu": r.ru_utime + r.ru_stime, "minflt": r.ru_minflt}
    return {k: v - since[k] for k, v in now.items()} if since else now


def child(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process: ``decode`` or ``predict_<variant>`` on a clip."""
    import numpy as np
    import torch

    from sparsesync_cli.heap import heap_reuse, heap_reuse_available
    from sparsesync_cli.media.decode import MediaReader

    torch.set_num_threads(args.threads)
    path = Path(args.clip)
    with MediaReader(path) as r:
        duration = r.info.duration_sec
    minutes = duration / 60
    if args.child == "decode":
        t, c = time.perf_counter(), cpu_times()
        with heap_reuse(), MediaReader(path) as r:  # as run_windows decodes
            lo, hi = r.video_span
            n = 0
            for f in range(lo, hi - 125 + 1, 125):
                r.read_frames(f, 125)
                r.read_audio(f * 640, 80_000)
                n += 1
        wall, cpu = time.perf_counter() - t, cpu_times(c)
        return {
            "windows": n,
            "s_per_min": round(wall / minutes, 2),
            "video_minutes_per_minute": round(60 / (wall / minutes), 2),
            "s_per_window": round(wall / n, 3),
            # all threads: what decoding takes from the cores
            "cpu_s_per_window": round(cpu["cpu"] / n, 3),
            "user_s_per_window": round(cpu["user"] / n, 3),
            "sys_s_per_window": round(cpu["sys"] / n, 3),
            "minor_faults_per_window": round(cpu["minflt"] / n),
            "peak_rss_mb": round(peak_rss_mb()),
            "loadavg_after": round(os.getloadavg()[0], 2),
        }

    from model_speed import full_sparsesync

    from sparsesync_cli.analysis.predict import PredictOptions, predict_file
    from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
    from sparsesync_cli.sync_model import ModelSetup, SyncModel, resolve_precision

    variant = args.child.removeprefix("predict_")
    net = full_sparsesync()
    if variant == "optimized":
        from sparsesync_cli.models.fast import optimize_for_inference

        net = optimize_for_inference(net, args.device)
    net = net.to(args.device).eval()
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    precision = resolve_precision(args.precision, args.device)
    setup = ModelSetup("bench", "sparsesync", None, grid, SPARSESYNC_GEOMETRY, args.device, precision)
    model = SyncModel(net, setup)
    # Warm up (first-call allocations, cuDNN autotuning) on one window, and keep the allocator's
    # heap from there to the end, as a batch does (iter_predictions keeps one heap for all its
    # files): the clip is measured as any file after the first of a batch, whose windows fault
    # no fresh pages in. The first window's decoding, before the model can start, still counts.
    heap = contextlib.ExitStack()
    heap.enter_context(heap_reuse())
    frames = np.random.default_rng(0).integers(0, 255, (args.batch_size, 125, 3, 224, 224), dtype=np.uint8)
    audio = np.random.default_rng(1).standard_normal((args.batch_size, 80_000)).astype(np.float32)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    model.logits(frames, audio)
    sync()

    def model_alone(reps: int) -> tuple[float, dict]:
        """The model alone on one window's inputs, ``reps`` times: (wall, CPU times)."""
        t, c = time.perf_counter(), cpu_times()
        for _ in range(reps):
            model.logits(frames, audio)
        sync()
        return time.perf_counter() - t, cpu_times(c)

    # The model alone, same process, same input shapes, same allocator settings as predict's
    # window loop: what decoding would cost on top of. Timed half before and half after the
    # clip, so a drift of the machine's speed during the run (a shared VM) weighs on both alike.
    before = model_alone(MODEL_REPS // 2)
    t, c = time.perf_counter(), cpu_times()
    result = predict_file(path, model, PredictOptions(batch_size=args.batch_size))
    wall, cpu = time.perf_counter() - t, cpu_times(c)
    n = len(result.windows)
    after = model_alone(MODEL_REPS - MODEL_REPS // 2)
    heap.close()
    per = MODEL_REPS * args.batch_size
    model_s = (before[0] + after[0]) / per
    model_cpu = {k: (before[1][k] + after[1][k]) / per for k in before[1]}
    return {
        "windows": n,
        "s_per_min": round(wall / minutes, 2),
        "video_minutes_per_minute": round(60 / (wall / minutes), 2),
        "s_per_window": round(wall / n, 3),
        "cpu_s_per_window": round(cpu["cpu"] / n, 3),
        "user_s_per_window": round(cpu["user"] / n, 3),
        "sys_s_per_window": round(cpu["sys"] / n, 3),
        "minor_faults_per_window": round(cpu["minflt"] / n),
        "model_s_per_window": round(model_s, 3),
        "model_windows_per_s": round(1 / model_s, 2),
        "model_cpu_s_per_window": round(model_cpu["cpu"], 3),
        "model_user_s_per_window": round(model_cpu["user"], 3),
        "model_sys_s_per_window": round(model_cpu["sys"], 3),
        "model_minor_faults_per_window": round(model_cpu["minflt"]),
        "heap_reuse": heap_reuse_available(),
        "e2e_over_model": round(wall / n / model_s, 3),
        "real_time_factor": round(wall / duration, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "device": args.device,
        "precision": precision,
        "batch_size": args.batch_size,
    }


def run_child(args: argparse.Namespace, what: str, clip: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--clip", str(clip), "--threads", str(args.threads)]
    cmd += ["--device", args.device, "--precision", args.precision, "--batch-size", str(args.batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    ap.add_argument("--batch-size", type=int, default=None, help="windows per model call (CPU 1, CUDA 8)")
    ap.add_argument("--quick", action="store_true", help="the 60 s clip only")
    ap.add_argument(
        "--clip-seconds",
        type=int,
        default=None,
        help="length of the 720p clip (default 60; shorter for a busy machine)",
    )
    ap.add_argument("--model-runs", type=int, default=3, help="timed runs of model_speed.py (0: skip it)")
    ap.add_argument("--no-eager-e2e", action="store_true", help="skip the eager model's end-to-end run")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("AVSYNC_BENCH_DIR", "/tmp/avsync-bench")))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.batch_size is None:
        args.batch_size = 8 if args.device.startswith("cuda") else 1
    if args.child:
        print(json.dumps(child(args)))
        return

    import torch

    report: dict = {
        "avsync_bench": 1,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__,
            "threads": args.threads,
            "device": args.device,
            "gpu": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None,
        },
    }
    args.dir.mkdir(parents=True, exist_ok=True)
    clips = {k: v for k, v in CLIPS.items() if not (args.quick and k != "720p_60s")}
    if args.clip_seconds:
        clips = {f"720p_{args.clip_seconds}s" if k == "720p_60s" else k: v for k, v in clips.items()}
        clips[f"720p_{args.clip_seconds}s"] = (1280, 720, args.clip_seconds)
    paths = {}
    for name, (w, h, secs) in clips.items():
        paths[name] = args.dir / f"{name}.mp4"
        if not paths[name].exists():
            print(f"synthesising {paths[name]} ...", file=sys.stderr)
            synthesize(paths[name], w, h, secs)

    if args.device == "cpu" and args.model_runs > 0:
        print("model: eager vs optimised ...", file=sys.stderr)
        cmd = [sys.executable, str(BENCH / "model_speed.py"), "--runs", str(args.model_runs)]
        cmd += ["--threads", str(args.threads)]
        ms = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["sparsesync"]
        report["model"] = {
            v: {
                "s_per_window": ms[v]["total_s_per_window"],
                "s3d_s_per_window": ms[v]["s3d_s_per_window"],
                "peak_rss_mb": ms[v].get("rss_mb", {}).get("peak"),
            }
            for v in ("eager", "optimized")
        }
        report["model"]["ratio_optimized_over_eager"] = ms["ratio"]
        report["model"]["max_abs_logit_diff"] = ms["max_abs_logit_diff"]

    for name, path in paths.items():
        print(f"{name}: decode ...", file=sys.stderr)
        entry: dict = {"decode": run_child(args, "decode", path)}
        variants = ["optimized"] + (["eager"] if name.startswith("720p") and not args.no_eager_e2e else [])
        for v in variants:
            print(f"{name}: predict ({v}) ...", file=sys.stderr)
            entry[f"predict_{v}"] = run_child(args, f"predict_{v}", path)
        report[name] = entry
    if "eager" in report.get("model", {}):
        short = next(k for k in paths if k.startswith("720p"))
        opt, eager = report[short]["predict_optimized"], report[short].get("predict_eager")
        if eager:
            report[short]["e2e_ratio_optimized_over_eager"] = round(opt["s_per_min"] / eager["s_per_min"], 3)
    for name in paths:
        e = report[name]
        p, d = e["predict_optimized"], e["decode"]
        # With every core busy, decode and model share the CPU: no schedule beats
        # (model CPU + decode CPU) / cores per window. The floor for e2e_over_model:
        cores = os.cpu_count() or 1
        if args.device == "cpu":
            floor = (p["model_cpu_s_per_window"] + d["cpu_s_per_window"]) / cores / p["model_s_per_window"]
            e["cpu_bound_e2e_over_model"] = round(max(1.0, floor), 3)
    report["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
