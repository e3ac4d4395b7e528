"""One heap for a whole batch vs one per file: wall, system time and page faults per file.

    python bench/batch_heap.py            # six 10 s 720p clips, full-size random-weight SparseSync

``iter_predictions`` (what ``avsync predict DIR`` runs) keeps the allocator's heap for the whole
batch (sparsesync_cli/heap.py); calling ``predict_file`` per file enters and leaves it per file,
so each file faults its pages in again on its first window. Both run in one process, per-file
first, each after a warm-up window; the first file of each is listed but left out of the means.
Clips are cut (stream copy) from bench/run.py's 60 s 720p clip, in --dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from model_speed import full_sparsesync
from run import CLIPS, synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("AVSYNC_BENCH_DIR", "/tmp/avsync-bench")))
    args = ap.parse_args()

    import numpy as np
    import torch

    from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions, predict_file
    from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
    from sparsesync_cli.media.ffmpeg import run_ffmpeg
    from sparsesync_cli.models.fast import optimize_for_inference
    from sparsesync_cli.sync_model import ModelSetup, SyncModel

    torch.set_num_threads(args.threads)
    args.dir.mkdir(parents=True, exist_ok=True)
    src = args.dir / "720p_60s.mp4"
    if not src.exists():
        synthesize(src, *CLIPS["720p_60s"])
    files = []
    for i in range(args.files):
        f = args.dir / f"batch_{args.seconds}s_{i}.mp4"
        if not f.exists():
            start = i * args.seconds % max(1, 60 - args.seconds)
            cut = ["-y", "-ss", str(start), "-i", str(src), "-t", str(args.seconds), "-c", "copy", str(f)]
            run_ffmpeg(cut, str(f))
        files.append(str(f))

    net = optimize_for_inference(full_sparsesync(), "cpu").eval()
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    model = SyncModel(net, ModelSetup("bench", "sparsesync", None, grid, SPARSESYNC_GEOMETRY, "cpu", "fp32"))
    model.logits(np.zeros((1, 125, 3, 224, 224), np.uint8), np.zeros((1, 80_000), np.float32))
    options = PredictOptions(batch_size=1)

    def usage() -> tuple[float, float, int]:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), r.ru_stime, r.ru_minflt

    def timed(results) -> list[dict]:
        rows, last = [], usage()
        for result in results:
            now = usage()
            rows.append(
                {
                    "file": Path(result.path).name,
                    "ok": result.ok,
                    "wall_s": round(now[0] - last[0], 3),
                    "sys_s": round(now[1] - last[1], 3),
                    "minor_faults": now[2] - last[2],
                }
            )
            last = usage()
        return rows

    report: dict = {"files": args.files, "seconds": args.seconds, "threads": args.threads}
    runs = {
        "heap_per_file": timed(predict_file(f, model, options) for f in files),
        "heap_per_batch": timed(iter_predictions(files, model, options)),
    }
    for name, rows in runs.items():
        rest = rows[1:] or rows
        report[name] = {
            "per_file": rows,
            "mean_wall_s": round(sum(r["wall_s"] for r in rest) / len(rest), 3),
            "mean_sys_s": round(sum(r["sys_s"] for r in rest) / len(rest), 3),
            "mean_minor_faults": round(sum(r["minor_faults"] for r in rest) / len(rest)),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
