"""Files per minute on one machine and on Ray with 1 and 2 model actors, on the same folder.

    pip install -e ".[ray]"                              # the bench imports the installed avsync
    python bench/ray_scaling.py                          # 6 copies of a 10 s clip, tiny model
    python bench/ray_scaling.py --files 12 --cpus 3
    python bench/ray_scaling.py --checkpoint ckpt.pt --config cfg.yaml --media clip.mp4

The files are copies of ``--media`` (default: the 10 s 454x256 VGGSound clip from
``../shared/media``), so every file costs the same and the figures compare like with like. The
model defaults to the tiny random-weight SparseSync fixture, so the run measures decoding and
Ray's own costs (scheduling, object store, actor start) rather than the model; pass a full-size
checkpoint to measure the model too. The local run is ``iter_predictions`` (what ``avsync
predict`` runs); the Ray runs are ``predict_on_ray`` on a local runtime of ``--cpus`` logical
CPUs (each actor and each decoder takes one; ``--threads`` torch threads per actor and locally).

Prints ONE JSON object: per run the wall seconds, files per minute and windows per second; Ray's
start-up seconds (``ray.init``, once); ``per_file_overhead_sec``: (Ray wall with 1 actor - local
wall) / files, i.e. what scheduling, moving decoded windows through the object store and the
actor's start cost per file when nothing runs in parallel; and the load average before and
after (the development machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARED = Path(os.environ.get("AVSYNC_SHARED", ROOT.parent / "shared"))
DEFAULT_MEDIA = SHARED / "media" / "vggsound_3qesirWAGt4_25fps_256side_16k.mp4"
TINY = SHARED / "fixtures" / "sparsesync"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    ap.add_argument("--checkpoint", type=Path, default=TINY / "tiny_sparsesync.pt")
    ap.add_argument("--config", type=Path, default=TINY / "cfg-tiny_sparsesync.yaml")
    ap.add_argument("--cpus", type=float, default=3, help="logical CPUs of the local Ray runtime")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per actor and locally")
    ap.add_argument("--actors", default="1,2")
    args = ap.parse_args()

    import ray

    from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions
    from sparsesync_cli.distributed.ray_pipeline import predict_on_ray
    from sparsesync_cli.distributed.work import ModelSpec

    folder = Path(tempfile.mkdtemp(prefix="avsync-ray-bench-"))
    try:
        files = []
        for i in range(args.files):
            f = folder / f"clip{i:03d}{args.media.suffix}"
            shutil.copyfile(args.media, f)
            files.append(str(f))
        spec = ModelSpec(checkpoint=str(args.checkpoint), config=str(args.config), threads=args.threads)
        model = spec.load()
        options = PredictOptions()
        load_before = os.getloadavg()[0]
        runs: dict[str, dict] = {}

        def record(name: str, wall: float, results: list) -> None:
            assert len(results) == len(files) and all(r.ok for r in results), [r.error for r in results]
            windows = sum(r.n_windows for r in results)
            runs[name] = {
                "wall_sec": round(wall, 2),
                "files_per_min": round(60 * len(files) / wall, 2),
                "windows_per_sec": round(windows / wall, 3),
            }
            print(f"{name}: {runs[name]}", file=sys.stderr)

        t = time.perf_counter()
        local = list(iter_predictions(files, model, options))
        record("local", time.perf_counter() - t, local)
        local_logits = {r.path: [w.logits for w in r.windows] for r in local}

        t = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_sec = time.perf_counter() - t
        try:
            for n in (int(a) for a in args.actors.split(",")):
                t = time.perf_counter()
                results = list(
                    predict_on_ray(
                        files, spec, options, model.setup, actors=n, cpus_per_actor=1, batch_size=1
                    )
                )
                record(f"ray_{n}_actor{'s' if n > 1 else ''}", time.perf_counter() - t, results)
                same = all([w.logits for w in r.windows] == local_logits[r.path] for r in results)
                runs[f"ray_{n}_actor{'s' if n > 1 else ''}"]["logits_equal_local"] = same
        finally:
            ray.shutdown()
        first_ray = next(v for k, v in runs.items() if k.startswith("ray_1"))
        overhead = (first_ray["wall_sec"] - runs["local"]["wall_sec"]) / len(files)
        out = {
            "files": len(files),
            "media": args.media.name,
            "checkpoint": args.checkpoint.name,
            "ray_cpus": args.cpus,
            "torch_threads": args.threads,
            "ray_init_sec": round(init_sec, 2),
            "runs": runs,
            "per_file_overhead_sec": round(overhead, 2),
            "loadavg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "ray_version": ray.__version__,
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
