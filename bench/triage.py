"""Fast triage (``--sample auto``) against a full read: same verdict? how many windows? how long?

    python bench/triage.py                      # simulated files + real files through the tiny model
    python bench/triage.py --files 1200 --seed 0
    python bench/triage.py --long-file          # issue 15's "done when": 60 min 1080p, full-size model

Not in CI. In one run:

1. **Simulated files** (``--files``, default 1,200, 1 to 120 minutes): per-window class
   probabilities from a model-like generator (each window informative or junk; informative ones
   peak near the true offset with a per-window sharpness, a few are confidently wrong; junk ones
   are noise), in six classes: in sync, a constant offset (anywhere in the range, also between two
   classes), drift, a jump, long silent stretches (windows that say nothing, leaning to 0 s), and
   low-confidence content. Each file is aggregated in full and with the stopping rule of
   :mod:`sparsesync_cli.analysis.sampling`; the verdict is (offset class, in sync or not, drift
   flag, jump flag). Wall time per file is measured for the rule's own arithmetic and estimated
   for the whole run from the per-window costs measured on real files in step 2 (sequential
   window vs a window read after a seek).
2. **Real files** decoded by :class:`MediaReader` through the tiny fixture model
   (``../shared/fixtures/sparsesync``): synthesised clips of a few minutes and the 25 fps clips of
   ``../shared/media``; ``predict_file`` with ``--sample all`` and ``auto``, wall time each; and
   the decode cost per window read sequentially vs after a seek (coarse-to-fine order).
3. ``--long-file``: a consistent 60-minute 1080p file (flat picture, steady tone: cheap to
   encode) and its first 60 s; the full-size random-weight SparseSync as ``bench/run.py`` builds
   it; ``predict --sample auto`` on the hour vs a full run on the 60 s clip: windows visited (target
   <= 5 % of 720) and wall time against visited windows x the full run's per-window time (target
   <= 1.3x); visited windows re-read right after their predecessor (decoding forward, no seek)
   must be bit-identical to the seeked read.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from sparsesync_cli.analysis.aggregate import aggregate
from sparsesync_cli.analysis.sampling import SamplingOptions, sample_windows
from sparsesync_cli.clock import IN_SYNC_TOLERANCE_SEC

BENCH = Path(__file__).resolve().parent

GRID = np.round(np.linspace(-2.0, 2.0, 21), 6)
CLASSES = ("in_sync", "offset", "drift", "jump", "silent", "low_conf")
LENGTH_BINS = ((0, 5), (5, 20), (20, 60), (60, 121))  # minutes


# ---------------------------------------------------------------- simulation
def _offset_fn(kind: str, minutes: float, rng: np.random.Generator):
    dur = minutes * 60
    if kind == "in_sync":
        o = rng.uniform(-0.05, 0.05)
        return lambda t: o
    if kind in ("offset", "low_conf"):
        o = rng.uniform(-1.8, 1.8)
        return lambda t: o
    if kind == "silent":
        o = rng.choice([0.0, rng.uniform(-1.8, 1.8)])
        return lambda t: o
    if kind == "drift":
        change = rng.uniform(0.4, 2.0) * rng.choice([-1, 1])
        o0 = float(np.clip(-change / 2 + rng.uniform(-0.5, 0.5), -1.9, 1.9))
        return lambda t: float(np.clip(o0 + change * t / dur, -2.0, 2.0))
    # jump: two levels at least 0.4 s apart, the change between 20 % and 80 % of the file
    a = rng.uniform(-1.6, 1.6)
    b = float(np.clip(a + rng.choice([-1, 1]) * rng.uniform(0.4, 1.6), -1.8, 1.8))
    if abs(b - a) < 0.4:
        b = a - np.sign(b - a or 1) * 0.6
    at = rng.uniform(0.2, 0.8) * dur
    return lambda t: a if t < at else b


def simulate(kind: str, minutes: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(window times, probabilities (W, 21)) for one simulated file."""
    n = max(1, int(minutes * 12))
    times = np.arange(n) * 5.0
    offset_at = _offset_fn(kind, minutes, rng)
    informative = np.full(n, 0.85)
    sharp_lo, sharp_hi = 1.0, 6.0
    if kind == "low_conf":
        informative[:] = 0.35
        sharp_lo, sharp_hi = 0.2, 1.0
    if kind == "silent":  # 1-3 silent stretches covering 30-60 % of the file
        share = rng.uniform(0.3, 0.6)
        k = int(rng.integers(1, 4))
        for _ in range(k):
            length = int(share * n / k)
            s = int(rng.integers(0, max(1, n - length)))
            informative[s : s + length] = 0.0
    z = np.empty((n, GRID.size))
    for i, t in enumerate(times):
        u = rng.random()
        if u < informative[i]:
            o = offset_at(t)
            if rng.random() < 0.04:  # confidently wrong
                o = rng.uniform(-2, 2)
            s = rng.uniform(sharp_lo, sharp_hi)
            z[i] = -s * ((GRID - o) / 0.2) ** 2 / 2 + rng.standard_normal(GRID.size) * 0.3
        else:
            z[i] = rng.standard_normal(GRID.size) * 0.6
            if informative[i] == 0.0:
                z[i, 10] += 1.0  # silence leans to "0 s"
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return times, p / p.sum(axis=1, keepdims=True)


def verdict(probs: np.ndarray, times: np.ndarray) -> tuple[int, bool, bool, bool]:
    agg = aggregate(probs, GRID, times)
    return (
        agg.offset_class,
        abs(agg.offset_sec) < IN_SYNC_TOLERANCE_SEC,
        agg.drift_sec_per_min is not None,
        agg.jump is not None,
    )


def run_simulation(n_files: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    opts = SamplingOptions(mode="auto")
    rows = []
    for f in range(n_files):
        kind = CLASSES[f % len(CLASSES)]
        minutes = float(np.exp(rng.uniform(np.log(1), np.log(120))))
        times, probs = simulate(kind, minutes, rng)
        t0 = time.perf_counter()
        full = verdict(probs, times)
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        sampled = sample_windows(times, GRID, lambda b, p=probs: {i: p[i] for i in b}, opts)
        used = sampled.used
        auto = verdict(probs[used], times[used])
        t_auto = time.perf_counter() - t0
        rows.append(
            {
                "kind": kind,
                "minutes": minutes,
                "windows": len(times),
                "used": len(sampled.order),
                "same": auto == full,
                "same_within_class": abs(auto[0] - full[0]) <= 1 and auto[1:] == full[1:],
                "full_changes": full[2] or full[3],
                "read_all": sampled.read_all,
                "decided": sampled.decided,
                "rule_s": t_auto,
                "full_rule_s": t_full,
            }
        )
    return rows


def table(rows: list[dict], seq_s: float, seek_s: float) -> str:
    """Markdown table by class and length: same verdict, windows used, wall time (est.)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        lo, hi = next(b for b in LENGTH_BINS if b[0] <= r["minutes"] < b[1])
        groups[(r["kind"], f"{lo}-{min(hi, 120)} min")].append(r)
        groups[(r["kind"], "all")].append(r)
        groups[("ALL", f"{lo}-{min(hi, 120)} min")].append(r)
        groups[("ALL", "all")].append(r)
    lines = [
        "| class | length | files | same verdict | same (+-1 class) | windows used / total | "
        "full reads where full finds drift/jump | est. wall full (s) | est. wall auto (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = [*CLASSES, "ALL"]
    for key in sorted(groups, key=lambda k: (order.index(k[0]), k[1] == "all", k[1])):
        g = groups[key]
        used, total = sum(r["used"] for r in g), sum(r["windows"] for r in g)
        ch = [r for r in g if r["full_changes"]]
        full_reads = f"{sum(r['read_all'] for r in ch)}/{len(ch)}" if ch else "-"
        wall_full = np.mean([r["windows"] * seq_s + r["full_rule_s"] for r in g])
        wall_auto = np.mean([r["used"] * (seq_s + seek_s) + r["rule_s"] for r in g])
        lines.append(
            f"| {key[0]} | {key[1]} | {len(g)} | {np.mean([r['same'] for r in g]):.1%} | "
            f"{np.mean([r['same_within_class'] for r in g]):.1%} | {used / total:.1%} | {full_reads} | "
            f"{wall_full:.0f} | {wall_auto:.0f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- real files
def real_files(tmp: Path, shared: Path) -> tuple[list[dict], float, float]:
    """Tiny model on real decoded files, full vs auto; decode cost per window sequential vs seek."""
    from sparsesync_cli.analysis.predict import PredictOptions, _read_window, predict_file
    from sparsesync_cli.analysis.sampling import visit_order
    from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY, plan_windows
    from sparsesync_cli.media.decode import MediaReader
    from sparsesync_cli.sync_model import load_model
    from sparsesync_cli.testmedia.synth import Clip, cached_clip

    fx = shared / "fixtures/sparsesync"
    model = load_model(
        checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml", device="cpu"
    )
    files = [  # kept small: on 2 shared cores the tiny model takes seconds per window
        cached_clip(tmp, Clip(duration=62.0, rate=16000, layout="mono", flash_sec=30.0, click_sec=31.0)).path,
        *sorted((shared / "media").glob("*25fps*16k.mp4")),
    ]
    rows = []
    seq_costs, seek_costs = [], []
    for path in files:
        with MediaReader(path) as r:
            windows = plan_windows(r.video_span, r.audio_span, SPARSESYNC_GEOMETRY)
            t0 = time.perf_counter()
            for w in windows:
                _read_window(r, w, SPARSESYNC_GEOMETRY)
            seq = (time.perf_counter() - t0) / len(windows)
        with MediaReader(path) as r:
            t0 = time.perf_counter()
            for i in visit_order(len(windows)):
                _read_window(r, windows[i], SPARSESYNC_GEOMETRY)
            seek = (time.perf_counter() - t0) / len(windows)
        seq_costs.append(seq)
        seek_costs.append(seek)
        out = {}
        for mode in ("all", "auto"):
            t0 = time.perf_counter()
            res = predict_file(path, model, PredictOptions(sampling=SamplingOptions(mode=mode)))
            out[mode] = (res, time.perf_counter() - t0)
        (full, t_full), (auto, t_auto) = out["all"], out["auto"]

        def v(x):
            in_sync = abs(x.offset_sec) < IN_SYNC_TOLERANCE_SEC
            return (x.offset_class, in_sync, x.drift_sec_per_min is not None)

        rows.append(
            {
                "file": path.name,
                "windows": len(windows),
                "used": auto.sampling.windows_used,
                "same": v(auto) == v(full),
                "stopped": auto.sampling.stopped,
                "wall_full_s": round(t_full, 2),
                "wall_auto_s": round(t_auto, 2),
                "decode_seq_s_per_window": round(seq, 3),
                "decode_seek_s_per_window": round(seek, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    model_s = np.mean([r["wall_full_s"] / r["windows"] for r in rows])
    return rows, float(model_s), float(np.mean(seek_costs) - np.mean(seq_costs))


# ---------------------------------------------------------------- long file
def long_file(tmp: Path, threads: int, minutes: float = 60.0) -> dict:
    import torch
    from model_speed import full_sparsesync

    from sparsesync_cli.analysis.predict import PredictOptions, _read_window, predict_file
    from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY, plan_windows
    from sparsesync_cli.media.decode import MediaReader
    from sparsesync_cli.media.ffmpeg import run_ffmpeg
    from sparsesync_cli.models.fast import optimize_for_inference
    from sparsesync_cli.sync_model import ModelSetup, SyncModel

    torch.set_num_threads(threads)
    clips = {}
    for name, sec in (("hour", round(minutes * 60)), ("minute", 60)):
        path = tmp / f"long_1080p_{name}_{sec}s.mp4"
        if not path.exists():
            t0 = time.perf_counter()
            part = path.with_name(path.stem + ".partial.mp4")
            run_ffmpeg(
                [
                    "-y", "-f", "lavfi", "-i", "color=c=0x406080:size=1920x1080:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:beep_factor=4",
                    "-t", str(sec), "-c:v", "mpeg4", "-q:v", "20", "-g", "50", "-c:a", "aac", str(part),
                ],
                part,
            )  # fmt: skip
            os.replace(part, path)
            print(f"synthesised {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        clips[name] = path
    net = optimize_for_inference(full_sparsesync(), "cpu").eval()
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    model = SyncModel(net, ModelSetup("bench", "sparsesync", None, grid, SPARSESYNC_GEOMETRY, "cpu", "fp32"))
    frames = np.zeros((1, 125, 3, 224, 224), np.uint8)
    model.logits(frames, np.zeros((1, 80_000), np.float32))  # warm-up
    t0 = time.perf_counter()
    minute = predict_file(clips["minute"], model)
    per_window = (time.perf_counter() - t0) / minute.n_windows
    t0 = time.perf_counter()
    auto = predict_file(clips["hour"], model, PredictOptions(sampling=SamplingOptions(mode="auto")))
    wall = time.perf_counter() - t0
    used = auto.sampling.windows_used
    # bit identity: each visited window read after a seek vs decoded forward from the window before it
    identical = True
    with MediaReader(clips["hour"]) as r:
        windows = plan_windows(r.video_span, r.audio_span, SPARSESYNC_GEOMETRY)
        starts = {round(SPARSESYNC_GEOMETRY.used_start_sec(w), 6): i for i, w in enumerate(windows)}
        for w in auto.windows:
            i = starts[round(w.start_sec, 6)]
            with MediaReader(clips["hour"]) as a:
                f1, s1 = _read_window(a, windows[i], SPARSESYNC_GEOMETRY)
            with MediaReader(clips["hour"]) as b:
                if i > 0:
                    _read_window(b, windows[i - 1], SPARSESYNC_GEOMETRY)
                f2, s2 = _read_window(b, windows[i], SPARSESYNC_GEOMETRY)
            identical &= bool(np.array_equal(f1, f2) and np.array_equal(s1, s2))
    return {
        "windows_total": auto.sampling.windows_total,
        "windows_used": used,
        "share_used": round(used / auto.sampling.windows_total, 4),
        "stopped": auto.sampling.stopped,
        "offset_sec": auto.offset_sec,
        "full_60s_s_per_window": round(per_window, 3),
        "auto_wall_s": round(wall, 2),
        "auto_over_visited_x_per_window": round(wall / (used * per_window), 3),
        "visited_windows_bit_identical": identical,
        "threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-real", action="store_true", help="simulated files only")
    ap.add_argument("--long-file", action="store_true", help="only the 60-minute 1080p check")
    ap.add_argument("--long-minutes", type=float, default=60.0, help="--long-file: its length (60)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/avsync-triage"))
    ap.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("AVSYNC_SHARED", BENCH.parent.parent / "shared"))
    )
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    if args.long_file:
        print(json.dumps(long_file(args.tmp, args.threads, args.long_minutes), indent=1))
        return
    seq_s, seek_s = 1.0, 0.0
    if not args.no_real:
        real, seq_s, seek_s = real_files(args.tmp, args.shared)
        print(f"real files: {sum(r['same'] for r in real)}/{len(real)} same verdict; "
              f"per window {seq_s:.2f} s (tiny model, full run), seek adds {seek_s:+.3f} s")  # fmt: skip
    t0 = time.perf_counter()
    rows = run_simulation(args.files, args.seed)
    print(f"\n{len(rows)} simulated files in {time.perf_counter() - t0:.0f} s; wall times estimated "
          f"from {seq_s:.2f} s per window and {seek_s:+.3f} s per seek\n")  # fmt: skip
    print(table(rows, seq_s, seek_s))
    long_consistent = [r for r in rows if r["kind"] in ("in_sync", "offset") and r["minutes"] > 20]
    used, total = sum(r["used"] for r in long_consistent), sum(r["windows"] for r in long_consistent)
    print(f"\nconsistent files over 20 min: {used}/{total} windows ({used / max(1, total):.1%})")
    for kind in ("in_sync", "offset"):
        g = [r for r in long_consistent if r["kind"] == kind]
        share = sum(r["used"] for r in g) / max(1, sum(r["windows"] for r in g))
        print(f"  {kind}: {len(g)} files, {share:.1%} of windows, median per file "
              f"{np.median([r['used'] / r['windows'] for r in g]):.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
