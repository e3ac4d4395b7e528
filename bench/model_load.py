"""Load time of a full-size checkpoint: the safe unpickler on an official-layout .pt vs the safetensors cache.

Usage: python bench/model_load.py [--repeat 3]

Builds the full SparseSync (21 classes, random weights), saves it the way the authors do (a dict
with model, args, and an Adam state twice the model's size, so the file is ~650 MB like
22-07-28T15-49-45.pt), then times a whole load up to a built model: through `load_checkpoint`
(the first load of a downloaded model) and through `checkpoints.cache.read_cached` (every later
load), and prints one JSON object. Needs ~1.5 GB of temporary disk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sparsesync_cli.checkpoints.cache import read_cached, write_cached
from sparsesync_cli.checkpoints.config import load_config
from sparsesync_cli.checkpoints.loading import load_checkpoint
from sparsesync_cli.checkpoints.registry import ModelEntry, Source
from sparsesync_cli.models.sparsesync import SparseSync, build_sparsesync

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = (
        (SHARED / "fixtures/sparsesync/cfg-tiny_sparsesync.yaml")
        .read_text()
        .replace("n_layer: 2", "n_layer: 3")
    )
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "cfg.yaml").write_text(text)
        cfg = load_config(d / "cfg.yaml")
        sd = SparseSync.from_config(cfg).state_dict()
        adam = {  # Adam keeps two float tensors per parameter (not per buffer)
            i: {"exp_avg": torch.randn_like(v), "exp_avg_sq": torch.rand_like(v)}
            for i, v in enumerate(sd.values())
            if v.is_floating_point()
        }
        pt = d / "full.pt"
        torch.save({"model": sd, "args": cfg, "optimizer": {"state": adam}, "epoch": 1}, pt)
        entry = ModelEntry(name="bench", id="bench", family="sparsesync", classes=21, max_offset_sec=2.0,
                           checkpoint=Source(url="https://example.org/full.pt"))  # fmt: skip
        write_cached(load_checkpoint(pt), entry, d / "cache", pt)

        def timed(fn) -> float:
            runs = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t)
            return statistics.median(runs)

        # Whole loads, up to a model with its weights in place (safetensors maps the file, so
        # reading alone would flatter it: the bytes are read when the weights are copied).
        pickle_s = timed(lambda: build_sparsesync(load_checkpoint(pt)))
        safetensors_s = timed(lambda: build_sparsesync(read_cached(entry, d / "cache")))
        print(
            json.dumps(
                {
                    "checkpoint_mb": round(pt.stat().st_size / 1e6, 1),
                    "safetensors_mb": round((d / "cache/model.safetensors").stat().st_size / 1e6, 1),
                    "model_from_pt_safe_unpickler_s": round(pickle_s, 3),
                    "model_from_safetensors_s": round(safetensors_s, 3),
                    "speedup": round(pickle_s / safetensors_s, 1),
                    "repeat": args.repeat,
                    "torch": torch.__version__,
                }
            )
        )


if __name__ == "__main__":
    main()
