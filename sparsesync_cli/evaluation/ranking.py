"""The authors' remaining metrics: accuracy@5, both accuracies within +-1 class, mAP, mean
ROC-AUC and d-prime, as ``calc_metrics`` (``scripts/train_utils.py`` of v-iashin/SparseSync)
computes them with scikit-learn and scipy, re-implemented here without either.

- ``acc@k``: the share of items whose target is among the ``k`` highest logits, with ``k`` capped
  at the number of classes (``topk = [min(k, num_cls) ...]``): with 3 classes "acc5" is acc@3,
  always 100 %. ``acc@k`` within +-1 class: one of the top ``k`` is the target or a neighbour
  (the neighbours clamped to the grid). Percentages here, fractions in the authors' logs.
- one-vs-rest over the softmax of the logits, per class ``c``: average precision
  (``sklearn.metrics.average_precision_score``: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct
  scores, highest first, ties taken together) and ROC-AUC (``roc_auc_score``: the trapezoidal area
  under the ROC curve, ties taken together). ``map`` and ``roc_auc`` are their means over the classes.
- ``dprime = sqrt(2) * Phi^-1(roc_auc)`` (``scipy.stats.norm().ppf``). It is infinite for a
  ROC-AUC of 1 (or 0): JSON has no infinity, so it is then ``None`` with a warning.
- A class that never occurs as a target makes ``roc_auc_score`` raise; the authors catch that and
  report ``mAP = 0``, ``mROCAUC = 0.5`` (so ``dprime = 0``) for the whole set, with a warning not
  to trust them. The same here: with fewer items than classes (or a class never drawn) these
  three are the authors' placeholders, and ``warnings`` says so.
- The authors warn that the tolerance accuracy is not reliable with 3 classes (every prediction
  is within one class of -1 s or +1 s when it is 0 s); so does ``warnings`` here.

The authors run the softmax in float32; here it is float64, which can only differ where two
probabilities tie in one precision and not the other.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

TOP_K = 5


def top_k_accuracy(logits: np.ndarray, targets: np.ndarray, k: int, tolerance: int = 0) -> float:
    """The share (0..1) of items with a top-``k`` class within ``tolerance`` classes of the target."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((np.abs(top - targets[:, None]) <= tolerance).any(axis=1).mean())


def average_precision(positive: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` of one binary column (0 with no positive)."""
    positive = np.asarray(positive, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    total = positive.sum()
    if total == 0:
        return 0.0  # recall is set to 1 at every threshold: no step, no area
    order = np.argsort(-scores, kind="mergesort")
    positive, scores = positive[order], scores[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last item of each tie
    tps = np.cumsum(positive)[last]
    precision = tps / (last + 1)
    recall = tps / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """scikit-learn's ``roc_auc_score`` of one binary column; None where it raises (one class only)."""
    positive = np.asarray(positive, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = positive.sum()
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    positive, scores = positive[order], scores[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tpr = np.r_[0.0, np.cumsum(positive)[last] / n_pos]
    fpr = np.r_[0.0, np.cumsum(1 - positive)[last] / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def dprime(auc: float) -> float | None:
    """``sqrt(2) * Phi^-1(auc)``; None where it is infinite (auc 0 or 1)."""
    if not 0.0 < auc < 1.0:
        return None
    return NormalDist().inv_cdf(auc) * math.sqrt(2)


def ranking_metrics(logits: np.ndarray, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """``acc5``, ``acc5_pm1`` (%), ``map``, ``roc_auc``, ``dprime`` and ``warnings``
    of the items' ``logits`` (N, C), their ``targets`` (N,) and softmax ``probs`` (N, C)."""
    n_cls = logits.shape[1]
    warnings = []
    if n_cls == 3:
        warnings.append(
            "accuracy within +-1 class is not reliable with 3 offset classes: a prediction of 0 s is "
            "within one class of every target (the authors warn the same)"
        )
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(targets)), targets] = 1.0
    aucs = [roc_auc(onehot[:, c], probs[:, c]) for c in range(n_cls)]
    present = [a for a in aucs if a is not None]
    if len(present) < n_cls:
        absent = [c for c in range(n_cls) if not onehot[:, c].any()]
        warnings.append(
            f"{len(absent)} of {n_cls} classes never occur as a target ({absent}): map, roc_auc and dprime "
            "are the authors' placeholders (0, 0.5, 0), not measurements"
        )
        m_ap, m_auc = 0.0, 0.5
    else:
        m_ap = float(np.mean([average_precision(onehot[:, c], probs[:, c]) for c in range(n_cls)]))
        m_auc = float(np.mean(present))
    d = dprime(m_auc)
    if d is None:
        warnings.append(f"dprime is infinite (roc_auc {m_auc}): reported as null")
    return {
        "acc5": _pct(top_k_accuracy(logits, targets, TOP_K)),
        "acc5_pm1": _pct(top_k_accuracy(logits, targets, TOP_K, tolerance=1)),
        "map": round(m_ap, 6),
        "roc_auc": round(m_auc, 6),
        "dprime": None if d is None else round(d, 6),
        "warnings": warnings,
    }


def _pct(x: float) -> float:
    return round(100.0 * float(x), 4)
