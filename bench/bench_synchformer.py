"""CPU time of one Synchformer window: the full-size model (12/12/3) with random weights.

    python bench/bench_synchformer.py --threads 2 --repeats 2

Prints the seconds for the input features and for each model stage, per window (batch 1).
Random weights change nothing in the cost; no checkpoint or network is needed.
"""

from __future__ import annotations

import argparse
import time

import torch

from sparsesync_cli.features.synchformer import audio_input, video_input
from sparsesync_cli.models.synchformer import Synchformer, SynchformerArch


def random_model() -> Synchformer:
    torch.manual_seed(0)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = random_model()
    params = sum(p.numel() for p in model.parameters())
    frames = torch.randint(0, 256, (125, 3, 224, 224), dtype=torch.uint8)
    samples = torch.randn(80_000) * 0.1
    print(f"Synchformer {model.arch}, {params:,} parameters, {args.threads} threads")
    for i in range(args.repeats):
        with torch.inference_mode():
            t0 = time.perf_counter()
            vid, aud = video_input(frames)[None], audio_input(samples)[None]
            t1 = time.perf_counter()
            vfeat = model.visual_features(vid)
            t2 = time.perf_counter()
            afeat = model.audio_features(aud)
            t3 = time.perf_counter()
            logits = model.offset_logits(vfeat, afeat)
            t4 = time.perf_counter()
        assert logits.shape == (1, model.arch.num_classes) and torch.isfinite(logits).all()
        print(
            f"run {i + 1}: features {t1 - t0:.2f} s, MotionFormer {t2 - t1:.2f} s, AST {t3 - t2:.2f} s, "
            f"global transformer {t4 - t3:.2f} s; total {t4 - t0:.2f} s per window"
        )


if __name__ == "__main__":
    main()
