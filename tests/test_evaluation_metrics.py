"""Metrics and calibration of `avsync evaluate`, on item records whose numbers are known by hand."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
from sparsesync_cli.errors import UsageError
from sparsesync_cli.evaluation.calibration import (
    apply_calibration,
    fit_calibration,
    fit_temperature,
    load_calibration,
    save_calibration,
    split_heldout,
)
from sparsesync_cli.evaluation.metrics import SCHEMA, compute_metrics, target_class
from sparsesync_cli.evaluation.protocol import ProtocolItem
from sparsesync_cli.evaluation.run import item_record
from sparsesync_cli.sync_model import ModelSetup

GRID21 = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
GRID3 = (-1.0, 0.0, 1.0)


def peaked_logits(k: int, n: int = 21, top: float = 0.7) -> list[float]:
    """log-probabilities: ``top`` on class k, the rest shared equally (0.015 each of 21)."""
    p = np.full(n, (1 - top) / (n - 1))
    p[k] = top
    return np.log(p).tolist()


def test_target_class_is_the_authors_nearest_grid_value():
    # make_fixed_offset.py stored offsets through float16 and round(., 2): 0.2 and -1.4 come back exact
    assert target_class(0.2, GRID21) == 11
    assert target_class(-2.0, GRID21) == 0 and target_class(2.0, GRID21) == 20
    assert target_class(0.19, GRID21) == 11 and target_class(-0.31, GRID21) == 8
    assert target_class(-1.0, GRID3) == 0 and target_class(0.0, GRID3) == 1 and target_class(1.0, GRID3) == 2


def test_metrics_equal_hand_computed_values():
    # Three hits and one prediction one class late (+0.2 s) at p = 0.7 each.
    items = [ProtocolItem("a", -2.0, 1.0), ProtocolItem("b", 0.0, 1.0), ProtocolItem("c", 0.4, 1.0)]
    recs = [
        item_record(it, GRID21, "m", logits=peaked_logits(target_class(it.offset_sec, GRID21)))
        for it in items
    ]
    wrong = ProtocolItem("d", 1.0, 2.0)
    recs.append(item_record(wrong, GRID21, "m", logits=peaked_logits(16)))  # true class 15
    recs.append(item_record(ProtocolItem("gone", 0.0, 0.0), GRID21, "m", error="gone: no such clip"))
    m = compute_metrics(recs, GRID21)
    assert m["schema"] == SCHEMA
    assert (m["n"], m["n_failed"]) == (4, 1)
    assert m["failed"] == [
        {"path": "gone", "vstart_sec": 0.0, "offset_sec": 0.0, "error": "gone: no such clip"}
    ]
    assert m["acc1"] == 75.0 and m["acc1_pm1"] == 100.0
    assert m["mean_abs_offset_error_sec"] == pytest.approx(0.2 / 4)
    # all four at confidence 0.7: one bin, accuracy 0.75 -> ECE |0.75 - 0.7| = 0.05
    assert m["ece"] == pytest.approx(0.05, abs=1e-6)
    [busy] = [b for b in m["reliability"] if b["n"]]
    assert (busy["lo"], busy["n"], busy["accuracy"]) == (0.7, 4, 0.75)
    assert busy["confidence"] == pytest.approx(0.7)
    # Brier: a hit 0.3^2 + 20 * 0.015^2 = 0.0945; the miss 0.7^2 + 0.985^2 + 19 * 0.015^2 = 1.4645
    assert m["brier"] == pytest.approx((3 * 0.0945 + 1.4645) / 4, abs=1e-6)
    cm = np.array(m["confusion"])
    assert cm.sum() == 4 and cm[0, 0] == cm[10, 10] == cm[12, 12] == 1 and cm[15, 16] == 1
    per = {c["offset_sec"]: c for c in m["per_class"]}
    assert per[1.0]["acc1"] == 0.0 and per[0.4]["acc1"] == 100.0 and per[-1.8]["acc1"] is None


def test_accuracy_within_one_class_matches_the_authors_clamped_tolerance():
    # calc_metrics clamps target-1 / target+1 to the grid; that only ever allows |pred - target| <= 1
    recs = [
        item_record(ProtocolItem("x", -1.0, 0.0), GRID3, "m", logits=peaked_logits(2, n=3)),  # 2 classes off
        item_record(ProtocolItem("y", -1.0, 0.0), GRID3, "m", logits=peaked_logits(1, n=3)),
        item_record(ProtocolItem("z", 1.0, 0.0), GRID3, "m", logits=peaked_logits(2, n=3)),
    ]
    m = compute_metrics(recs, GRID3)
    assert m["acc1"] == pytest.approx(100 / 3, abs=1e-3) and m["acc1_pm1"] == pytest.approx(200 / 3, abs=1e-3)


def test_temperature_fit_recovers_the_overconfidence_within_5_percent():
    rng = np.random.default_rng(1)
    n, true_t = 20000, 2.5
    base = rng.normal(0.0, 1.5, size=(n, 21))
    base[np.arange(n), rng.integers(0, 21, n)] += 3.0
    p = np.exp(base - base.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(21, p=row) for row in p])  # labels drawn from the calibrated model
    overconfident = base * true_t
    t = fit_temperature(overconfident, targets)
    assert abs(t - true_t) / true_t < 0.05, t


def _model(name="tiny.pt", family="sparsesync", grid=GRID21):
    return ModelSetup(name, family, None, grid, SPARSESYNC_GEOMETRY, "cpu", "fp32")


def _overconfident_records(n=400, t=3.0, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        true = int(rng.integers(0, 21))
        z = rng.normal(0, 1.0, 21)
        z[true] += 2.0
        recs.append(
            item_record(ProtocolItem(f"c{i}", GRID21[true], 1.0), GRID21, "tiny.pt", logits=(z * t).tolist())
        )
    return recs


def test_fit_calibration_improves_heldout_ece_and_names_its_model(tmp_path):
    cal = fit_calibration(_overconfident_records(), _model())
    assert cal.temperature > 1.2  # softens the over-confident logits
    assert cal.heldout["ece_after"] < cal.heldout["ece_before"]
    assert cal.n_fit + cal.n_heldout == 400 and cal.n_heldout == 120
    path = tmp_path / "cal.json"
    save_calibration(cal, path)
    d = json.loads(path.read_text())
    assert d["schema"] == "avsync.calibration/2" and d["model"] == {
        "name": "tiny.pt",
        "family": "sparsesync",
        "classes": 21,
        "sha256": None,  # a model made in memory has no checkpoint file
    }
    back = load_calibration(path)
    assert back.temperature == cal.temperature and back.path == str(path)


def test_a_calibration_for_another_model_is_refused_in_one_line(tmp_path):
    path = tmp_path / "cal.json"
    save_calibration(fit_calibration(_overconfident_records(60), _model()), path)

    class Loaded:
        info = _model(name="sparsesync-lrs3")

    with pytest.raises(UsageError) as e:
        apply_calibration(Loaded(), load_calibration(path))
    msg = str(e.value)
    assert "\n" not in msg and "tiny.pt" in msg and "sparsesync-lrs3" in msg and str(path) in msg
    right = Loaded()
    right.info = _model()
    apply_calibration(right, load_calibration(path))
    assert right.info.calibration["temperature"] == load_calibration(path).temperature
    assert right.info.result_model().to_dict()["calibration"]["file"] == str(path)


@pytest.mark.parametrize(
    "content, why",
    [
        ("not json", "not JSON"),
        ('{"schema": "x"}', "schema"),
        ('{"schema": "avsync.calibration/2", "temperature": -1}', "missing or wrong"),
        (
            '{"schema": "avsync.calibration/2", "temperature": 2, "model": {"name": "m", "family": "f", '
            '"classes": 21, "sha256": "abc"}}',
            "missing or wrong",
        ),
        ('{"schema": "avsync.calibration/1", "temperature": 2}', "fit it again"),
    ],
)
def test_a_broken_calibration_file_is_one_line(tmp_path, content, why):
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(UsageError, match=why):
        load_calibration(p)


def test_temperature_leaves_accuracy_alone_but_changes_confidence():
    recs = _overconfident_records(100)
    m1, m2 = compute_metrics(recs, GRID21), compute_metrics(recs, GRID21, temperature=3.0)
    assert m1["acc1"] == m2["acc1"] and m1["confusion"] == m2["confusion"]
    assert m2["ece"] != m1["ece"] and math.isfinite(m2["brier"])


def test_the_heldout_split_is_by_clip_never_by_item():
    # 4 items per clip (make-protocol --per-clip 4): a clip's items are all fitted or all held out
    recs = [
        item_record(ProtocolItem(f"clip{c}", GRID21[k], 1.0), GRID21, "tiny.pt", logits=peaked_logits(k))
        for c in range(10)
        for k in (2, 7, 11, 16)
    ]
    fit, held = split_heldout([r["path"] for r in recs])
    fit_clips, held_clips = {recs[i]["path"] for i in fit}, {recs[i]["path"] for i in held}
    assert not fit_clips & held_clips and len(held_clips) == 3 and len(held) == 12
    assert sorted([*fit, *held]) == list(range(40))
    cal = fit_calibration(recs, _model())
    assert (cal.n_fit, cal.n_heldout) == (28, 12)
    with pytest.raises(UsageError, match="2 clips or more"):
        fit_calibration([{**r, "path": "one"} for r in recs], _model())


def test_a_calibration_is_bound_to_the_checkpoint_bytes_not_its_name(tmp_path):
    a, b = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"
    for p, byte in ((a, b"\x00"), (b, b"\x01")):  # same name, one byte apart
        p.parent.mkdir()
        p.write_bytes(b"weights" * 1000 + byte)
    model_a = ModelSetup("model.pt", "sparsesync", str(a), GRID21, SPARSESYNC_GEOMETRY, "cpu", "fp32")
    model_b = replace(model_a, checkpoint=str(b))
    path = tmp_path / "cal.json"
    save_calibration(fit_calibration(_overconfident_records(60), model_a), path)
    assert json.loads(path.read_text())["model"]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()

    class Loaded:
        info = model_a

    apply_calibration(Loaded(), load_calibration(path))  # the same bytes: accepted
    Loaded.info = model_b
    with pytest.raises(UsageError) as e:
        apply_calibration(Loaded(), load_calibration(path))
    msg = str(e.value)
    assert "\n" not in msg and str(b) in msg and str(path) in msg and "sha256" in msg
    a.write_bytes(b.read_bytes())  # the file at a's path now holds other bytes: refused too
    Loaded.info = model_a
    with pytest.raises(UsageError, match="sha256"):
        apply_calibration(Loaded(), load_calibration(path))
