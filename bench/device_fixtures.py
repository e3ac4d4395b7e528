"""The conformance fixtures on a given device and precision: how far the logits move.

    python bench/device_fixtures.py --device cuda --precision fp32
    python bench/device_fixtures.py --device cuda --precision fp16

Runs every golden case of both fixtures (SparseSync and Synchformer, from the media file through
the real decode path, as tests/test_golden.py does on CPU) and prints one JSON object with the
max |logit difference| per case and whether the argmax agrees. At fp32 every case must be within
the fixtures' 1e-2 (exit 1 otherwise). fp16 autocast is reported, not judged: the fixtures'
random weights were scaled to make logits input-sensitive (attention x5, head x20), which also
amplifies half-precision rounding; trained weights are far less sensitive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from sparsesync_cli.analysis.predict import PredictOptions, predict_file
from sparsesync_cli.sync_model import load_model

TOLERANCE = 1e-2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp32")
    default_shared = os.environ.get("AVSYNC_SHARED", Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--shared", type=Path, default=Path(default_shared))
    args = ap.parse_args()
    fx = args.shared / "fixtures"
    models = {
        "sparsesync": load_model(
            checkpoint=fx / "sparsesync/tiny_sparsesync.pt",
            config=fx / "sparsesync/cfg-tiny_sparsesync.yaml",
            device=args.device,
            precision=args.precision,
        ),
        "synchformer": load_model(
            checkpoint=fx / "synchformer/tiny_synchformer_state_dict.pt",
            device=args.device,
            precision=args.precision,
        ),
    }
    report: dict = {"device": args.device, "precision": args.precision, "tolerance": TOLERANCE, "cases": []}
    ok = True
    for family, model in models.items():
        for i, case in enumerate(json.loads((fx / family / "golden_logits.json").read_text())):
            opts = PredictOptions(
                start_sec=case["v_start_i_sec"], shift_sec=case["offset_sec"], duration_sec=5.0
            )
            w = predict_file(args.shared / case["path"], model, opts).windows[0]
            diff = float(np.abs(np.array(w.logits) - np.array(case["logits"])).max())
            same = int(np.argmax(w.logits)) == case["argmax"]
            report["cases"].append(
                {"family": family, "case": i, "max_abs_logit_diff": diff, "same_argmax": same}
            )
            ok &= diff <= TOLERANCE and same
    report["all_within_tolerance"] = ok
    print(json.dumps(report, indent=1))
    if args.precision == "fp32" and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
