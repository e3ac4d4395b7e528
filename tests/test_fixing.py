"""`avsync fix`: when a measured offset is applied, and that a fix moves exactly what it says."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesync_cli.analysis.fix_decision import decide_fix, plan_fix
from sparsesync_cli.analysis.predict import PredictOptions, predict_file
from sparsesync_cli.analysis.results import ModelRecord, SyncResult
from sparsesync_cli.analysis.trend import Trend
from sparsesync_cli.media.remux import fix_offset
from sparsesync_cli.sync_model import load_model

MODEL = ModelRecord("m", "sparsesync")
GRID = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))


def result(offset=0.4, confidence=0.95, agreement=1.0, drift=None, edge=False, trend=None) -> SyncResult:
    return SyncResult(
        path="clip.mp4", ok=True, error=None, model=MODEL, offset_sec=offset, offset_words="words",
        offset_class=GRID.index(offset) if offset in GRID else None, at_range_edge=edge,
        confidence=confidence, agreement=agreement, drift_sec_per_min=drift, grid=GRID, trend=trend,
    )  # fmt: skip


def drifting(intercept=0.1, slope=0.3, last=240.0, confidence=0.95) -> SyncResult:
    """A measured drift: the windows from 0 to ``last`` s follow offset = intercept + slope*t/60."""
    line = Trend(slope, intercept, 0.0, last, inliers=0.9, significant=True)
    return result(offset=0.6, confidence=confidence, agreement=0.3, drift=slope, trend=line)


def test_a_measured_drift_is_refused_unless_allowed_then_the_line_is_applied():
    assert not decide_fix(drifting()).apply and "--allow-drift" in decide_fix(drifting()).reason
    d = decide_fix(drifting(), allow_drift=True)  # windows disagree along a drift: not asked
    assert d.apply and d.offset_sec == 0.1 and d.drift_sec_per_min == 0.3
    assert d.action == "audio delayed by 0.10 s, retimed for a drift of +0.300 s per minute"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"confidence": 0.5}, "below --min-confidence"),
        ({"last": 600.0}, "edge of the model's range"),  # 0.1 + 0.3 * 10 = 3.1 s > 2 s
    ],
)
def test_an_unsure_drift_is_not_applied_even_when_allowed(kwargs, why):
    d = decide_fix(drifting(**kwargs), allow_drift=True)
    assert not d.apply and why in d.reason


def test_a_given_drift_is_always_applied():
    d = plan_fix(0.0, 0.3)
    assert (
        d.apply
        and d.drift_sec_per_min == 0.3
        and d.action == "audio retimed for a drift of +0.300 s per minute"
    )


def test_a_confident_consistent_offset_is_applied():
    d = decide_fix(result(0.4))
    assert d.apply and d.offset_sec == 0.4 and d.action == "audio delayed by 0.40 s"
    assert decide_fix(result(-1.2)).action == "audio advanced by 1.20 s"
    assert decide_fix(result(0.0)).action.startswith("no shift")


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"confidence": 0.6}, "below --min-confidence 0.8"),
        ({"drift": 0.3}, "drifts (+0.30 s per minute)"),
        ({"agreement": 0.3}, "windows disagree"),
        ({"offset": 2.0, "edge": True}, "edge of the model's range"),
    ],
)
def test_an_unsure_measurement_is_not_applied(kwargs, why):
    d = decide_fix(result(**kwargs))
    assert not d.apply and why in d.reason


def test_a_failed_measurement_is_not_applied():
    failed = SyncResult.failed("x.mp4", "no audio stream", model=MODEL)
    assert not decide_fix(failed).apply


def test_an_explicit_offset_is_always_applied():
    assert plan_fix(-0.4).apply and plan_fix(-0.4).offset_sec == -0.4


@pytest.fixture(scope="module")
def tiny(shared_dir):
    fx = shared_dir / "fixtures/sparsesync"
    return load_model(
        checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml", device="cpu"
    )


@pytest.mark.parametrize("offset", [0.4, -0.6])
def test_fixing_then_predicting_equals_predicting_with_the_opposite_shift(tiny, shared_dir, tmp_path, offset):
    """fix --offset X, then a window at S with no shift == the unfixed file at S with shift -X.

    The paper's code's semantics: the fix moves the audio by exactly -X in file time, so the
    fixed file's window reads the very samples the shifted window of the original reads.
    """
    src = shared_dir / "media/lrs3_C8zY0oAdQrs_00018_25fps_256side_16k.mp4"
    fixed = tmp_path / "fixed.mp4"
    fix_offset(src, fixed, offset)
    start = 3.0
    one = PredictOptions(start_sec=start, duration_sec=5.0)
    after = predict_file(fixed, tiny, one).windows[0]
    before = predict_file(src, tiny, PredictOptions(start_sec=start, shift_sec=-offset, duration_sec=5.0))
    ref = before.windows[0]
    diff = np.abs(np.array(after.logits) - np.array(ref.logits)).max()
    assert diff <= 1e-2, f"max |logit diff| {diff:.2e}"
    assert np.argmax(after.logits) == np.argmax(ref.logits)
