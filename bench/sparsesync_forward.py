"""CPU time of one SparseSync forward pass (full-size 21-class model, random weights, batch 1).

Usage: python bench/sparsesync_forward.py [--threads 2] [--repeat 1]
Prints the wall time of S3D alone, the audio ResNet, the head, and the whole forward.
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
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


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
            vfeat, t_s3d = timed(model.visual_features, vid)
            vis, t_bridge = timed(model.visual_bridge, vfeat)
            afeat, t_res = timed(model.audio_features, aud)
            _, t_head = timed(model.head, vis, afeat)
            _, t_all = timed(model, vid, aud)
            print(
                f"S3D {t_s3d:.2f} s | bridge {t_bridge:.3f} s | audio ResNet {t_res:.3f} s | "
                f"head {t_head:.3f} s | whole forward {t_all:.2f} s"
            )


if __name__ == "__main__":
    main()
