"""The paper's accuracies and confidence metrics over evaluated items (schema ``avsync.evaluation/1``).

Definitions follow the authors' ``calc_metrics`` (``scripts/train_utils.py`` of
v-iashin/SparseSync): the target class of an item is the grid class closest to its
``offset_sec`` (``quantize_offset``: argmin of ``|grid - offset|``), the prediction is the arg-max
of the logits, ``accuracy_1`` is the share of exact hits, and ``accuracy_1_tol1`` counts a
prediction one class to either side of the target as right (the authors clamp the neighbours to
the grid, which is the same as ``|pred - target| <= 1``). They report both as fractions; here
they are percentages, as in the paper's tables. The confidence metrics (not in the paper) use the
softmax of the logits: the reliability table has 10 equal-width bins of the top-class
probability, ECE is the item-weighted mean gap between a bin's accuracy and its mean confidence,
and the Brier score is the mean over items of ``sum_c (p_c - [c == target])^2`` (0 is perfect,
2 is the worst). :mod:`.ranking` adds the authors' other metrics (acc5, acc5_pm1, mAP, ROC-AUC,
d-prime) and their warnings.

Randomised passes (``evaluate --passes``, :mod:`.passes`): every metric pools the items of all
passes, as the authors compute theirs over ``iter_times`` iterations of the test set;
``acc1_per_pass`` is each pass's own acc1 and ``acc1_per_pass_std`` their sample standard
deviation, the pass-to-pass spread. Without passes these three are None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .ranking import ranking_metrics

SCHEMA = "avsync.evaluation/1"
RELIABILITY_BINS = 10


def target_class(offset_sec: float, grid: Sequence[float]) -> int:
    """The class an offset belongs to: the closest grid value (the authors' ``quantize_offset``)."""
    g = np.asarray(grid, dtype=np.float32)  # the authors' grid is a float32 tensor
    return int(np.abs(g - np.float32(offset_sec)).argmin())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def reliability(probs: np.ndarray, targets: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict[str, Any]]:
    """Per confidence bin ``[lo, hi)`` (the last one closed): items, mean confidence, accuracy."""
    conf = probs.max(axis=1)
    hit = probs.argmax(axis=1) == targets
    # bin index: conf in [k/bins, (k+1)/bins); conf == 1.0 goes to the last bin
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    rows = []
    for k in range(bins):
        m = idx == k
        n = int(m.sum())
        rows.append(
            {
                "lo": k / bins,
                "hi": (k + 1) / bins,
                "n": n,
                "confidence": float(conf[m].mean()) if n else None,
                "accuracy": float(hit[m].mean()) if n else None,
            }
        )
    return rows


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = RELIABILITY_BINS) -> float:
    """ECE (0..1): sum over bins of ``n_b / N * |accuracy_b - confidence_b|``."""
    total = len(targets)
    return float(
        sum(
            r["n"] / total * abs(r["accuracy"] - r["confidence"])
            for r in reliability(probs, targets, bins)
            if r["n"]
        )
    )


def brier_score(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over items of the squared distance between the probabilities and the one-hot target."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(targets)), targets] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of the targets."""
    return float(-np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-300, None)).mean())


def compute_metrics(
    records: Sequence[dict[str, Any]],
    grid: Sequence[float],
    *,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """The ``avsync.evaluation/1`` metrics of item records (see :mod:`.run`).

    Failed items are counted (``n_failed``) and listed (``failed``), and left out of every
    metric, as the paper's numbers are over the items that could be read. ``temperature``
    divides the logits before the softmax (calibration); accuracies do not depend on it.
    """
    ok = [r for r in records if r.get("ok")]
    failed = [r for r in records if not r.get("ok")]
    n_cls = len(grid)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "n": len(ok),
        "n_failed": len(failed),
        "failed": [
            {
                "path": r["path"],
                "vstart_sec": r["vstart_sec"],
                "offset_sec": r["offset_sec"],
                "error": r.get("error"),
            }
            for r in failed
        ],
        "grid": [float(g) for g in grid],
        "temperature": temperature,
        **pass_summary(records),
    }
    if not ok:
        out.update(acc1=None, acc1_pm1=None, acc5=None, acc5_pm1=None, map=None, roc_auc=None, dprime=None,
                   warnings=[], mean_abs_offset_error_sec=None, per_class=[], confusion=[],
                   reliability=[], ece=None, brier=None, nll=None)  # fmt: skip
        return out
    logits = np.array([r["logits"] for r in ok], dtype=np.float64)
    targets = np.array([r["target_class"] for r in ok], dtype=int)
    preds = logits.argmax(axis=1)
    true_off = np.array([r["offset_sec"] for r in ok], dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    probs = softmax(logits, temperature)
    confusion = np.zeros((n_cls, n_cls), dtype=int)
    np.add.at(confusion, (targets, preds), 1)
    per_class = []
    for c in range(n_cls):
        m = targets == c
        per_class.append(
            {
                "class": c,
                "offset_sec": float(g[c]),
                "n": int(m.sum()),
                "acc1": _pct((preds[m] == c).mean()) if m.any() else None,
            }
        )
    out.update(
        acc1=_pct((preds == targets).mean()),
        acc1_pm1=_pct((np.abs(preds - targets) <= 1).mean()),
        **ranking_metrics(logits, targets, probs),
        mean_abs_offset_error_sec=round(float(np.abs(g[preds] - true_off).mean()), 6),
        per_class=per_class,
        confusion=confusion.tolist(),
        reliability=reliability(probs, targets),
        ece=round(expected_calibration_error(probs, targets), 6),
        brier=round(brier_score(probs, targets), 6),
        nll=round(nll(probs, targets), 6),
    )
    return out


def pass_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``passes``, ``seed``, ``acc1_per_pass`` (%, over each pass's successful items, in pass
    order) and ``acc1_per_pass_std`` (sample standard deviation; None for one pass) of records
    of randomised passes; all None for records without passes."""
    drawn = [r for r in records if r.get("pass") is not None]
    if not drawn:
        return {"passes": None, "seed": None, "acc1_per_pass": None, "acc1_per_pass_std": None}
    passes = sorted({int(r["pass"]) for r in drawn})
    per_pass = []
    for p in passes:
        hits = [r["pred_class"] == r["target_class"] for r in drawn if r["pass"] == p and r.get("ok")]
        per_pass.append(_pct(np.mean(hits)) if hits else None)
    values = [v for v in per_pass if v is not None]
    seeds = sorted({int(r["seed"]) for r in drawn})
    return {
        "passes": len(passes),
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "acc1_per_pass": per_pass,
        "acc1_per_pass_std": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
    }


def _pct(x: float) -> float:
    return round(100.0 * float(x), 4)
