"""Seconds per 5 s window of the full-size models, plain eager against the optimised path.

    python bench/model_speed.py                     # SparseSync, batch 1, 2 threads, 5 runs
    python bench/model_speed.py --batch 2 --threads 1
    python bench/model_speed.py --synchformer       # Synchformer too (~40 s per window)
    python bench/model_speed.py --no-eager          # only the optimised path (and its memory)
    python bench/model_speed.py --no-optimize       # only the plain eager model
    python bench/model_speed.py --reference ~/src/SparseSync   # the authors' model beside ours
    python bench/model_speed.py --decode ../shared/media/vggsound_3qesirWAGt4_original_30fps_44k.mp4

Builds the models with random weights (random BatchNorm statistics too, so folding them is
really tested; the cost does not depend on the values), no checkpoint or network needed.
Prints ONE JSON object: per model variant the median seconds per window of each stage and in
total over ``--runs`` timed runs after ``--warmup`` untimed ones, and the peak RSS of a fresh
process that builds the model and runs one batch; ``ratio`` = optimised / eager.
The machine may be shared: the two variants run interleaved (A B B A ...) in one process so
that load hits both alike, and the load average before and after is reported.

``--reference DIR`` (a checkout of github v-iashin/SparseSync; bench/reference_model.py imports
their modules from it at run time, nothing of it is copied here) times the authors' model as a
third variant, same inputs, same weights (ours loaded strictly into theirs), and reports
``ratio_<variant>_over_authors`` in total and per stage, and the largest logit difference. It
needs omegaconf, einops and torchvision installed (bench only, not avsync's dependencies).
All variants run under predict's allocator settings (sparsesync_cli/heap.py) unless
``--no-heap-reuse``: process-wide, so they apply to the authors' model alike.

``--decode FILE`` runs a PyAV decode loop (RGB frames at the file's size) in a thread beside the
model, as the end-to-end pipeline does, and reports the frames it decoded per second.

Tried on this 2-core machine (torch 2.13, S3D alone, uncontended runs; eager 5.06 s) and left
out, because they did not pay:
- spatial (1,k,k) convolutions as conv2d over the B*T frames: 2.36 s against 2.31 s as 3-D
  channels-last; temporal (k,1,1) ones as conv2d over (T, H*W): 2x slower per layer;
- one convolution for the three 1x1 convolutions that read each inception block's input: 2.38 s;
- (the 3x3x3 max-pools as a 2-D pool and a max over neighbouring frames measured 2.33 s here
  once; that version returned a tensor with a batch stride of C, which sends the next oneDNN
  convolution down a slow path. With dense strides it is ~25 ms per window faster and is used:
  ``FramewiseMaxPool3d``, bit-identical.)
- weights reordered once into oneDNN's blocked layout: 2.32 s;
- torch.compile (inductor, freezing) of the eager S3D: 1.93 s against 2.16 s for this path in
  the same runs (10 % faster: its max-pools skip the indices), but 45 s to compile (20-28 s
  with a warm cache) and a C++ compiler on the user's machine: it pays only after 100-200
  windows, so it is not used;
- batching windows: 2.46 s per window at batch 2 and 4 against 2.56-2.63 s at batch 1 in the
  same minutes, for ~0.4 GB more memory per window.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sparsesync_cli.checkpoints.config import load_config
from sparsesync_cli.heap import heap_reuse, heap_reuse_available
from sparsesync_cli.models.fast import optimize_for_inference
from sparsesync_cli.models.sparsesync import SparseSync, official_arch

VARIANTS = ("eager", "optimized")
AUTHORS = "authors"  # the authors' model from a checkout given with --reference
Stage = tuple[str, Callable[[], None]]
Stages = tuple[list[Stage], Callable[[], torch.Tensor]]  # the stages, then the logits they made


def full_sparsesync(cfg_path: Path | None = None) -> SparseSync:
    """The official 21-class architecture with random weights (``cfg_path``: another config)."""
    model = SparseSync.from_config(load_config(cfg_path)) if cfg_path else SparseSync(official_arch(21))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model.eval()


def random_synchformer() -> torch.nn.Module:
    from sparsesync_cli.models.synchformer import Synchformer, SynchformerArch

    model = Synchformer(SynchformerArch())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.dim() == 1:  # LayerNorm weights
                p.fill_(1.0)
            else:
                p.normal_(std=0.02)
    return model.eval()


def sparsesync_inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised frames and spectrograms of ``batch`` windows, the same for every variant."""
    g = torch.Generator().manual_seed(batch)
    return torch.randn(batch, 125, 3, 224, 224, generator=g), torch.randn(batch, 1, 257, 626, generator=g)


def sparsesync_stages(model: SparseSync, batch: int) -> Stages:
    vid, aud = sparsesync_inputs(batch)
    box: dict[str, torch.Tensor] = {}

    def s3d() -> None:
        box["v"] = model.visual_features(vid)

    def rest() -> None:
        box["logits"] = model.head(model.visual_bridge(box["v"]), model.audio_features(aud))

    return [("s3d", s3d), ("audio_bridge_head", rest)], lambda: box["logits"]


def synchformer_stages(model: torch.nn.Module, batch: int) -> Stages:
    g = torch.Generator().manual_seed(batch)
    vid = torch.randn(batch, 14, 16, 3, 224, 224, generator=g)
    aud = torch.randn(batch, 14, 1, 128, 66, generator=g)
    box: dict[str, torch.Tensor] = {}

    def motionformer() -> None:
        box["v"] = model.visual_features(vid)

    def rest() -> None:
        box["logits"] = model.offset_logits(box["v"], model.audio_features(aud))

    return [("motionformer", motionformer), ("ast_head", rest)], lambda: box["logits"]


def time_stages(stages: list[Stage]) -> dict[str, float]:
    """Wall seconds per stage and in total, and ``cpu_util``: the process's CPU seconds over wall
    seconds times the thread count (~1 when the model had the cores to itself; ~0.5 when another
    process took one of two cores, and then the wall time is worth little)."""
    out = {}
    cpu = time.process_time()
    for name, fn in stages:
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    out["total"] = sum(out.values())
    out["cpu_util"] = (time.process_time() - cpu) / out["total"] / torch.get_num_threads()
    return out


def compare(
    models: dict[str, torch.nn.Module], make_stages, batch: int, runs: int, warmup: int, makers=None
) -> dict:
    """Interleaved timing of the variants; medians per window, ratio, and how far the logits differ.

    ``makers``: a stage builder per variant where it differs from ``make_stages`` (the authors' model).
    """
    makers = makers or {}
    stages = {k: makers.get(k, make_stages)(m, batch) for k, m in models.items()}
    times: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    order = list(models)
    with torch.inference_mode():
        for i in range(warmup + runs):
            for k in order if i % 2 == 0 else order[::-1]:  # A B, B A, ...: no variant always first
                t = time_stages(stages[k][0])
                if i >= warmup:
                    times[k].append(t)
        logits = {k: s[1]() for k, s in stages.items()}
    result: dict = {}
    for k, ts in times.items():
        result[k] = {
            f"{stage}_s_per_window": round(statistics.median(t[stage] for t in ts) / batch, 4)
            for stage in ts[0]
            if stage != "cpu_util"
        }
        result[k]["runs_total_s"] = [round(t["total"], 3) for t in ts]
        result[k]["runs_cpu_util"] = [round(t["cpu_util"], 2) for t in ts]
    if AUTHORS in models:  # the baseline of issue 15: the authors' forward, same inputs and weights
        ref = result[AUTHORS]
        for v in VARIANTS:
            if v in result:
                result[f"ratio_{v}_over_authors"] = round(
                    result[v]["total_s_per_window"] / ref["total_s_per_window"], 3
                )
                for stage in ("s3d", "audio_bridge_head"):
                    result[f"{stage}_ratio_{v}_over_authors"] = round(
                        result[v][f"{stage}_s_per_window"] / ref[f"{stage}_s_per_window"], 3
                    )
                diff = (logits[v] - logits[AUTHORS]).abs().max().item()
                result[f"max_abs_logit_diff_{v}_vs_authors"] = float(f"{diff:.3g}")
    if "eager" in models and "optimized" in models:
        eager, fast = (result[v]["total_s_per_window"] for v in VARIANTS)
        result["ratio"] = round(fast / eager, 3)
        first = stages["eager"][0][0][0]  # the backbone
        result[f"{first}_ratio"] = round(
            result["optimized"][f"{first}_s_per_window"] / result["eager"][f"{first}_s_per_window"], 3
        )
        diff = (logits["optimized"] - logits["eager"]).abs().max().item()
        result["max_abs_logit_diff"] = float(f"{diff:.3g}")
        result["max_abs_logit"] = float(f"{logits['eager'].abs().max().item():.4g}")  # the scale
        result["same_argmax"] = bool(torch.equal(logits["optimized"].argmax(-1), logits["eager"].argmax(-1)))
    return result


def peak_rss_child(args: argparse.Namespace, variant: str) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process that builds the model and its inputs (``before_forward``),
    then runs one batch (``peak``)."""
    cmd = [sys.executable, __file__, "--rss-child", variant, "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads)] + (["--config", str(args.config)] if args.config else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM (reset by exec, unlike ru_maxrss, which a child
    inherits from its parent), else ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_child(args: argparse.Namespace) -> None:
    model = full_sparsesync(args.config)
    if args.rss_child == "optimized":
        model = optimize_for_inference(model)
    stages, _ = sparsesync_stages(model, args.batch)
    before = peak_rss_mb()
    with torch.inference_mode():
        time_stages(stages)
    print(json.dumps({"before_forward": round(before), "peak": round(peak_rss_mb())}))


class DecodeLoop(threading.Thread):
    """Decodes ``path`` to RGB frames again and again until stopped; counts the frames."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.frames, self.stop = path, 0, threading.Event()

    def run(self) -> None:
        import av

        while not self.stop.is_set():
            with av.open(str(self.path)) as f:
                for frame in f.decode(video=0):
                    frame.to_ndarray(format="rgb24")
                    self.frames += 1
                    if self.stop.is_set():
                        return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=1, help="windows per forward pass")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per variant first")
    ap.add_argument("--no-eager", action="store_true", help="time only the optimised path")
    ap.add_argument("--no-optimize", action="store_true", help="time only the plain eager model")
    ap.add_argument("--synchformer", action="store_true", help="also time Synchformer (slow)")
    ap.add_argument("--synchformer-runs", type=int, default=1)
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--decode", type=Path, help="decode this video in a thread beside the model")
    ap.add_argument(
        "--config", type=Path, default=None, help="a cfg-<id>.yaml (default: the official 21-class)"
    )
    ap.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="a checkout of v-iashin/SparseSync: time the authors' model beside ours (same inputs, weights)",
    )
    ap.add_argument(
        "--no-heap-reuse",
        action="store_true",
        help="time without predict's allocator settings (sparsesync_cli/heap.py), for every variant",
    )
    ap.add_argument("--rss-child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.rss_child:
        return rss_child(args)
    variants = [v for v in VARIANTS if not (v == "eager" and args.no_eager)]
    variants = [v for v in variants if not (v == "optimized" and args.no_optimize)]
    if not variants:
        ap.error("--no-eager and --no-optimize leave nothing to time")

    report: dict = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "batch": args.batch,
        "runs": args.runs,
        "warmup": args.warmup,
        "loadavg_before": [round(v, 2) for v in os.getloadavg()],
    }
    decoder = DecodeLoop(args.decode) if args.decode else None
    if decoder:
        decoder.start()
        t_decode = time.perf_counter()
    base = full_sparsesync(args.config)
    models = {"eager": base, "optimized": optimize_for_inference(base)}
    timed = {v: models[v] for v in variants}
    makers = {}
    if args.reference:
        from reference_model import REFERENCE_NOTES, load_reference, reference_stages

        # Our state dict has the authors' key names: their model loads it strictly.
        timed[AUTHORS] = load_reference(args.reference, base.state_dict())
        makers[AUTHORS] = lambda m, batch: reference_stages(m, *sparsesync_inputs(batch))
        report["reference"] = {
            "dir": str(args.reference),
            "notes": REFERENCE_NOTES,
            "weights": "this run's random full-size weights (21 classes), loaded strictly into both",
            "authors_demo_end_to_end": "not run: scripts/example.py needs torchaudio, torchvision.io and "
            "a system ffmpeg; the registry's torchvision/torchaudio are CUDA builds that do not load "
            "beside a CPU-only torch",
        }
    report["heap_reuse"] = heap_reuse_available() and not args.no_heap_reuse
    with contextlib.nullcontext() if args.no_heap_reuse else heap_reuse():
        report["sparsesync"] = compare(timed, sparsesync_stages, args.batch, args.runs, args.warmup, makers)
    if args.synchformer:
        sf = random_synchformer()
        if optimize_for_inference(sf) is sf:  # nothing to optimise: time it once
            sf_variants = {"eager": sf}
        else:
            sf_variants = {v: sf if v == "eager" else optimize_for_inference(sf) for v in variants}
        with torch.inference_mode():  # warm up on one segment: a whole window takes ~40 s
            for m in sf_variants.values():
                m.visual_features(torch.randn(1, 1, 16, 3, 224, 224))
                m.audio_features(torch.randn(1, 1, 1, 128, 66))
        report["synchformer"] = compare(sf_variants, synchformer_stages, args.batch, args.synchformer_runs, 0)
        report["synchformer"]["optimize_changes_nothing"] = len(sf_variants) == 1
    if decoder:
        decoder.stop.set()
        report["decode_fps_beside_model"] = round(decoder.frames / (time.perf_counter() - t_decode), 1)
        decoder.join()
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    if not args.no_rss:
        for v in variants:
            report["sparsesync"][v]["rss_mb"] = peak_rss_child(args, v)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
