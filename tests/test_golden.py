"""The papers' reference outputs, reproduced from the media file through our whole pipeline.

Each golden case is one 5 s window of a real clip (start ``v_start_i_sec``, simulated shift
``offset_sec``), computed by the authors' code with random weights. Decoding, crop,
pre-processing and model must all be right for the logits to agree within 1e-2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsesync_cli.analysis.predict import PredictOptions, predict_file
from sparsesync_cli.sync_model import load_model

TOLERANCE = 1e-2  # fixtures README: max |logit - golden| <= 1e-2 and the same argmax


def _cases(shared_dir, family):
    return json.loads((shared_dir / f"fixtures/{family}/golden_logits.json").read_text())


@pytest.fixture(scope="module")
def sparsesync_model(shared_dir):
    fx = shared_dir / "fixtures/sparsesync"
    return load_model(
        checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml", device="cpu"
    )


@pytest.fixture(scope="module")
def synchformer_model(shared_dir):
    # The bare Hugging Face layout: no config, the architecture comes from the weights.
    return load_model(
        checkpoint=shared_dir / "fixtures/synchformer/tiny_synchformer_state_dict.pt", device="cpu"
    )


def _check_case(model, shared_dir, case):
    opts = PredictOptions(start_sec=case["v_start_i_sec"], shift_sec=case["offset_sec"], duration_sec=5.0)
    result = predict_file(shared_dir / case["path"], model, opts)
    assert result.ok and len(result.windows) == 1
    w = result.windows[0]
    got, want = np.array(w.logits), np.array(case["logits"])
    diff = float(np.abs(got - want).max())
    assert diff <= TOLERANCE, f"max |logit diff| {diff:.2e}"
    assert int(got.argmax()) == case["argmax"]
    assert w.shift_sec == pytest.approx(case["offset_sec"])
    np.testing.assert_allclose(result.grid, case["grid"], atol=1e-6)
    return diff


@pytest.mark.parametrize("index", [0, 1, 2])
def test_sparsesync_golden_cases_from_the_media_file(sparsesync_model, shared_dir, index):
    _check_case(sparsesync_model, shared_dir, _cases(shared_dir, "sparsesync")[index])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_synchformer_golden_cases_from_the_media_file(synchformer_model, shared_dir, index):
    _check_case(synchformer_model, shared_dir, _cases(shared_dir, "synchformer")[index])


def test_the_model_knows_its_family_and_window(sparsesync_model, synchformer_model):
    assert sparsesync_model.setup.family == "sparsesync" and sparsesync_model.geometry.used_frames == (0, 125)
    assert synchformer_model.setup.family == "synchformer"
    assert synchformer_model.geometry.used_frames == (2, 122)  # Synchformer sees 4.8 s of each 5 s
