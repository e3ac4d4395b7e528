"""CPU time of one SparseSync forward pass (full-size 21-class model, random weights, batch 1).

Usage: python bench/sparsesync_forward.py [--threads 2] [--repeat 1]
Prints wall and CPU time of S3D alone, the bridge, the audio ResNet, the head, then of a whole
forward (run after the stages, so it is warm). The machine's load skews wall times: compare runs
made under the same load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sparsesync_cli.config import load_config
from sparsesync_cli.models.sparsesync import SparseSync

TINY_CFG = Path(__file__).resolve().parents[2] / "shared/fixtures/sparsesync/cfg-tiny_sparsesync.yaml"


def full_config(path: Path) -> dict:
    """The official architecture: the tiny fixture config with n_layer 3."""
    text = path.read_text().replace("n_layer: 2", "n_layer: 3")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cfg.yaml").write_text(text)
        return load_config(Path(d) / "cfg.yaml")


def timed(fn, *args):
    """(output, wall seconds, CPU seconds of this process, all threads)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--config", type=Path, default=TINY_CFG)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SparseSync.from_config(full_config(args.config))
    vid = torch.randn(1, 125, 3, 224, 224)
    aud = torch.randn(1, 1, 257, 626)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {args.threads} threads, {n_params:,} params")
    with torch.inference_mode():
        for _ in range(args.repeat):
            vfeat, *t_s3d = timed(model.visual_features, vid)
            vis, *t_bridge = timed(model.visual_bridge, vfeat)
            afeat, *t_res = timed(model.audio_features, aud)
            _, *t_head = timed(model.head, vis, afeat)
            _, *t_all = timed(model, vid, aud)
            parts = {
                "S3D": t_s3d,
                "bridge": t_bridge,
                "audio ResNet": t_res,
                "head": t_head,
                "forward": t_all,
            }
            print(" | ".join(f"{k} {w:.2f} s wall, {c:.2f} s CPU" for k, (w, c) in parts.items()))


if __name__ == "__main__":
    main()
