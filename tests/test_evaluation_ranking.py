"""The authors' calc_metrics figures (acc@5, tolerance accuracies, mAP, ROC-AUC, d-prime): against
hand-computed values, and mAP / ROC-AUC against a slow reference written from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsesync_cli.evaluation.metrics import compute_metrics
from sparsesync_cli.evaluation.protocol import Draw, ProtocolItem
from sparsesync_cli.evaluation.ranking import average_precision, dprime, roc_auc
from sparsesync_cli.evaluation.run import item_record

# ---------------------------------------------------------------- references (definitions, O(n^2))


def reference_average_precision(positive, scores) -> float:
    """sum over the distinct thresholds t, highest first, of (R(t) - R(previous t)) * P(t), where
    P(t) and R(t) are the precision and recall of calling every item scoring >= t positive."""
    positive, scores = list(positive), list(scores)
    total = sum(positive)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        called = [p for p, s in zip(positive, scores, strict=True) if s >= t]
        recall = sum(called) / total
        ap += (recall - prev_recall) * (sum(called) / len(called))
        prev_recall = recall
    return ap


def reference_roc_auc(positive, scores) -> float:
    """The probability that a positive outscores a negative, a tie counting one half (the area
    under the ROC curve with ties joined by a straight line)."""
    pos = [s for p, s in zip(positive, scores, strict=True) if p]
    neg = [s for p, s in zip(positive, scores, strict=True) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def softmax64(logits):
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- hand-computed values


def test_average_precision_and_roc_auc_by_hand():
    # hits at ranks 1 and 3: P = 1 at R = 1/2, P = 2/3 at R = 1
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a tie at the top is one threshold: P = 1/2 at R = 1/2, then P = 2/3 at R = 1
    assert average_precision([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1]) == pytest.approx(0.25 + 1 / 3)
    # pairs (positive, negative): (.5,.5) tie 1/2, (.5,.1) 1, (.2,.5) 0, (.2,.1) 1 -> 2.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1]) == pytest.approx(0.625)
    assert roc_auc([1, 1], [0.5, 0.2]) is None  # one class only: scikit-learn raises
    assert average_precision([0, 0], [0.5, 0.2]) == 0.0
    # d' = sqrt(2) * Phi^-1(AUC): Phi(1) = 0.8413447460685429
    assert dprime(0.8413447460685429) == pytest.approx(math.sqrt(2), abs=1e-9)
    assert dprime(0.5) == 0.0 and dprime(1.0) is None


def _records(targets, logits, grid):
    return [
        item_record(ProtocolItem(f"c{i}", grid[t], 1.0), grid, "m", logits=lg)
        for i, (t, lg) in enumerate(zip(targets, logits, strict=True))
    ]


def test_the_authors_own_example_of_calc_metrics():
    # scripts/train_utils.py's __main__: 6 items, 4 classes; grid offsets only name the classes
    grid = (-1.0, -0.5, 0.5, 1.0)
    targets = [3, 3, 1, 2, 1, 0]
    logits = [
        [0.2, 0.3, 0.1, 0.5],  # top 3        hit
        [0.4, 0.3, 0.0, 0.1],  # top 0 (of 3) miss, 3 classes off; 3 is 3rd
        [0.5, 0.1, 0.4, 0.3],  # top 0 (of 1) miss, within one class; 1 is 4th
        [0.0, 0.2, 0.4, 0.5],  # top 3 (of 2) miss, within one class; 2 is 2nd
        [0.2, 0.3, 0.1, 0.1],  # top 1        hit
        [0.2, 0.1, 0.1, 0.1],  # top 0        hit
    ]
    m = compute_metrics(_records(targets, logits, grid), grid)
    assert m["acc1"] == 50.0
    assert m["acc1_pm1"] == pytest.approx(500 / 6, abs=1e-3)
    assert m["acc5"] == 100.0 and m["acc5_pm1"] == 100.0  # k capped at the 4 classes
    probs = softmax64(logits)
    onehot = np.eye(4)[targets]
    want_map = np.mean([reference_average_precision(onehot[:, c], probs[:, c]) for c in range(4)])
    want_auc = np.mean([reference_roc_auc(onehot[:, c], probs[:, c]) for c in range(4)])
    assert m["map"] == pytest.approx(want_map, abs=1e-6)
    assert m["roc_auc"] == pytest.approx(want_auc, abs=1e-6)
    # class 0 has one positive, item 5 (p_0 = e^.2 / (e^.2 + 3 e^.1) = 0.269); items 1 (0.302) and
    # 2 (0.295) score higher, items 4, 0, 3 (0.255, 0.229, 0.187) lower: AP = 1/3, AUC = 3/5
    assert average_precision(onehot[:, 0], probs[:, 0]) == pytest.approx(1 / 3)
    assert roc_auc(onehot[:, 0], probs[:, 0]) == pytest.approx(0.6)
    assert m["dprime"] == pytest.approx(math.sqrt(2) * _ppf(want_auc), abs=1e-6)
    assert m["warnings"] == []


def _ppf(p: float) -> float:
    """Phi^-1 by bisection on math.erf (independent of statistics.NormalDist)."""
    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p else (lo, mid)
    return (lo + hi) / 2


def test_top5_and_tolerance_accuracies_by_hand():
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    ranks = list(range(21, 0, -1))  # logits: class 0 first, class 20 last

    def rolled(first):  # logits whose order of classes starts at `first`
        order = [(first + j) % 21 for j in range(21)]
        lg = [0.0] * 21
        for r, c in zip(ranks, order, strict=True):
            lg[c] = float(r)
        return lg

    # target 10 each time; the top 5 are first..first+4:
    # 10: a hit everywhere; 14 (14..18) and 16 (16..20): misses everywhere;
    # 6 (6..10): acc5 and acc5_pm1; 11 (11..15): acc1_pm1 and acc5_pm1; 5 (5..9): acc5_pm1 (9)
    firsts = [10, 14, 6, 16, 11, 5]
    m = compute_metrics(_records([10] * 6, [rolled(f) for f in firsts], grid), grid)
    assert m["acc1"] == pytest.approx(100 / 6, abs=1e-3)
    assert m["acc1_pm1"] == pytest.approx(200 / 6, abs=1e-3)
    assert m["acc5"] == pytest.approx(200 / 6, abs=1e-3)
    assert m["acc5_pm1"] == pytest.approx(400 / 6, abs=1e-3)


def test_a_class_that_never_occurs_gives_the_authors_placeholders_and_a_warning():
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    rng = np.random.default_rng(0)
    m = compute_metrics(_records([3, 7, 10], rng.normal(size=(3, 21)).tolist(), grid), grid)
    assert (m["map"], m["roc_auc"], m["dprime"]) == (0.0, 0.5, 0.0)
    assert any("never occur" in w and "18 of 21" in w for w in m["warnings"])


def test_three_classes_warn_that_the_tolerance_accuracy_is_unreliable():
    grid = (-1.0, 0.0, 1.0)
    m = compute_metrics(_records([0, 1, 2], np.eye(3).tolist(), grid), grid)
    assert any("3 offset classes" in w for w in m["warnings"])
    assert m["acc5"] == 100.0  # top-3 of 3 classes
    assert (m["roc_auc"], m["map"], m["dprime"]) == (1.0, 1.0, None)  # perfect: d' infinite
    assert any("infinite" in w for w in m["warnings"])


def test_map_and_roc_auc_equal_the_reference_on_tied_random_data():
    rng = np.random.default_rng(3)
    grid = tuple(round(-1.0 + 0.5 * i, 6) for i in range(5))
    distinct = np.round(rng.normal(size=(9, 5)), 1)  # few distinct rows: many exact ties per class
    logits = distinct[rng.integers(0, 9, 150)]
    targets = rng.integers(0, 5, 150)
    m = compute_metrics(_records(targets.tolist(), logits.tolist(), grid), grid)
    probs = softmax64(logits)
    onehot = np.eye(5)[targets]
    want_map = np.mean([reference_average_precision(onehot[:, c], probs[:, c]) for c in range(5)])
    want_auc = np.mean([reference_roc_auc(onehot[:, c], probs[:, c]) for c in range(5)])
    assert m["map"] == pytest.approx(want_map, abs=1e-6)
    assert m["roc_auc"] == pytest.approx(want_auc, abs=1e-6)


def test_passes_pool_every_item_and_report_each_pass():
    grid = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
    recs = []
    # pass 0: 2 of 2 right; pass 1: 1 of 2; pass 2: 0 of 2 and one failed item
    for p, hits in enumerate([(True, True), (True, False), (False, False)]):
        for row, hit in enumerate(hits):
            it = ProtocolItem(f"clip{row}", 0.4, 1.0, Draw(7, p, row))
            lg = np.full(21, -5.0)
            lg[12 if hit else 3] = 5.0
            recs.append(item_record(it, grid, "m", logits=lg.tolist()))
    recs.append(item_record(ProtocolItem("gone", 0.0, 0.0, Draw(7, 2, 2)), grid, "m", error="gone: missing"))
    m = compute_metrics(recs, grid)
    assert (m["passes"], m["seed"], m["n"], m["n_failed"]) == (3, 7, 6, 1)
    assert m["acc1"] == 50.0 and m["acc1_per_pass"] == [100.0, 50.0, 0.0]
    assert m["acc1_per_pass_std"] == pytest.approx(50.0)  # sample std of 100, 50, 0
    assert recs[0]["pass"] == 0 and recs[0]["row"] == 0 and recs[0]["seed"] == 7
    plain = compute_metrics([item_record(ProtocolItem("a", 0.4, 1.0), grid, "m", logits=lg.tolist())], grid)
    assert plain["passes"] is None and plain["acc1_per_pass"] is None
