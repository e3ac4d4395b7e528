"""The clean-room SparseSync against the authors' code: stage by stage and end to end (case 0)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsesync_cli.checkpoints.config import load_config
from sparsesync_cli.checkpoints.loading import Checkpoint, load_checkpoint
from sparsesync_cli.errors import CheckpointError, ConfigError
from sparsesync_cli.features.sparsesync import audio_input, video_input
from sparsesync_cli.models.sparsesync import (
    SparseSync,
    build_sparsesync,
    official_arch,
    offset_grid,
    read_arch,
)

FIX = "fixtures/sparsesync"
LOGIT_TOL = 1e-2  # the fixture README's tolerance; float noise is ~2e-4
HEAD_TOL = 2e-3  # the head alone, from the reference's features


@pytest.fixture(scope="module")
def tiny(shared_dir: Path) -> Checkpoint:
    return load_checkpoint(shared_dir / FIX / "tiny_sparsesync.pt")


@pytest.fixture(scope="module")
def model(tiny: Checkpoint) -> SparseSync:
    return build_sparsesync(tiny)


@pytest.fixture(scope="module")
def case0(shared_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(shared_dir / FIX / "case0_tensors.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.fixture(scope="module")
def run(model: SparseSync, case0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One pass from the raw frames and samples, keeping every stage (S3D dominates: ~10 s)."""
    with torch.inference_mode():
        vid = video_input(case0["frames_uint8"])[None]
        aud = audio_input(case0["audio_f32"])[None]
        vfeat = model.visual_features(vid)
        vbridge = model.visual_bridge(vfeat)
        afeat = model.audio_features(aud)
        return {
            "vfeat": vfeat[0],
            "vbridge": vbridge[0],
            "afeat": afeat[0],
            "logits": model.head(vbridge, afeat)[0],
        }


def _assert_close_to_scale(got: torch.Tensor, ref: torch.Tensor, tol: float = 1e-2) -> None:
    assert got.shape == ref.shape
    err = (got - ref).abs().max().item()
    assert err <= tol * ref.abs().max().item(), f"max abs diff {err:.3g} vs scale {ref.abs().max():.3g}"


def _config(shared_dir: Path, tmp_path: Path, **replace: str) -> dict:
    text = (shared_dir / FIX / "cfg-tiny_sparsesync.yaml").read_text()
    for old, new in replace.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "cfg.yaml").write_text(text)
    return load_config(tmp_path / "cfg.yaml")


FULL_21 = {"n_layer: 2": "n_layer: 3"}
FULL_3 = {
    "n_layer: 2": "n_layer: 3",
    "num_offset_cls: 21": "num_offset_cls: 3",
    "max_off_sec: 2": "max_off_sec: 1",
}


def test_logits_match_reference(run: dict[str, torch.Tensor], case0: dict[str, torch.Tensor]) -> None:
    ref = case0["logits"]
    assert (run["logits"] - ref).abs().max().item() <= LOGIT_TOL
    assert run["logits"].argmax() == ref.argmax()


@pytest.mark.parametrize("stage", ["vfeat", "vbridge", "afeat"])
def test_each_stage_matches_reference(run: dict[str, torch.Tensor], case0: dict, stage: str) -> None:
    _assert_close_to_scale(run[stage], case0[stage])


def test_stages_from_reference_inputs(model: SparseSync, case0: dict[str, torch.Tensor]) -> None:
    # Each stage fed the reference's own input, so a fault is pinned to one stage.
    with torch.inference_mode():
        _assert_close_to_scale(model.visual_bridge(case0["vfeat"][None])[0], case0["vbridge"])
        afeat = model.audio_features(case0["audio_input"][None, None])[0]
        _assert_close_to_scale(afeat, case0["afeat"])
        logits = model.head(case0["vbridge"][None], case0["afeat"][None])[0]
    # Tighter than end to end: from the reference's own features only the head's float noise
    # (~1e-5) remains, while e.g. a [t|h|w] instead of [t|w|h] position embedding moves it 0.03.
    assert (logits - case0["logits"]).abs().max().item() <= HEAD_TOL


def test_head_batches_windows_independently(model: SparseSync, case0: dict[str, torch.Tensor]) -> None:
    vis, aud = case0["vbridge"][None], case0["afeat"][None]
    with torch.inference_mode():
        both = model.head(torch.cat([vis, vis.flip(1)]), torch.cat([aud, aud.flip(3)]))
        second = model.head(vis.flip(1), aud.flip(3))
    assert both.shape == (2, 21)
    torch.testing.assert_close(both[0], case0["logits"], atol=LOGIT_TOL, rtol=0)
    torch.testing.assert_close(both[1], second[0], atol=1e-4, rtol=0)
    assert (both[0] - both[1]).abs().max() > 1e-2  # the two windows really differ


@pytest.mark.parametrize(("manifest", "edits"), [("21cls", FULL_21), ("3cls", FULL_3)])
def test_full_architecture_has_official_keys(
    shared_dir: Path, tmp_path: Path, manifest: str, edits: dict
) -> None:
    cfg = _config(shared_dir, tmp_path, **edits)
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = SparseSync.from_config(cfg)
    got = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in model.state_dict().items()
    }
    want = json.loads((shared_dir / FIX / f"state_dict_keys_full_{manifest}.json").read_text())
    assert got.keys() == want.keys()
    assert got == want


@pytest.mark.parametrize("classes", [21, 3])
def test_official_arch_equals_the_official_config(shared_dir: Path, tmp_path: Path, classes: int) -> None:
    cfg = _config(shared_dir, tmp_path, **(FULL_21 if classes == 21 else FULL_3))
    assert official_arch(classes) == read_arch(cfg)


def test_offset_grid(shared_dir: Path, tmp_path: Path, tiny: Checkpoint) -> None:
    golden = json.loads((shared_dir / FIX / "golden_logits.json").read_text())
    assert offset_grid(tiny.config) == golden[0]["grid"]
    assert offset_grid(_config(shared_dir, tmp_path, **FULL_3)) == [-1.0, 0.0, 1.0]


def test_tiny_checkpoint_loads_with_its_yaml(shared_dir: Path, tiny: Checkpoint, model: SparseSync) -> None:
    with_yaml = dataclasses.replace(tiny, config=load_config(shared_dir / FIX / "cfg-tiny_sparsesync.yaml"))
    other = build_sparsesync(with_yaml)
    assert not other.training and not model.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert model.transformer.off_head.weight.dtype == torch.float32  # fp16 weights upcast on load


@pytest.mark.parametrize(
    ("edits", "first"),
    [
        (FULL_21, "transformer.v_selector.blocks.2.ln1.weight: weights absent vs config [512]; 67 more"),
        (
            {"num_offset_cls: 21": "num_offset_cls: 3"},
            "transformer.off_head.weight: weights [21,512] vs config [3,512])",
        ),
    ],
)
def test_config_weights_mismatch_is_one_line(
    shared_dir: Path, tmp_path: Path, tiny: Checkpoint, edits: dict, first: str
) -> None:
    bad = dataclasses.replace(tiny, config=_config(shared_dir, tmp_path, **edits))
    with pytest.raises(CheckpointError) as err:
        build_sparsesync(bad)
    msg = str(err.value)
    assert msg.startswith(f"{tiny.path}: config does not match the weights (e.g. ")
    assert first in msg and "\n" not in msg


def test_extra_weights_are_a_mismatch(tiny: Checkpoint) -> None:
    extra = dict(tiny.state_dict, **{"transformer.extra.weight": torch.zeros(2)})
    with pytest.raises(
        CheckpointError, match=r"transformer\.extra\.weight: weights \[2\] vs config absent\)"
    ):
        build_sparsesync(dataclasses.replace(tiny, state_dict=extra))


def test_config_of_another_architecture_is_refused(
    shared_dir: Path, tmp_path: Path, tiny: Checkpoint
) -> None:
    glob = "model.modules.feature_selector.Global"
    cfg = _config(shared_dir, tmp_path, **{f"target: {glob}Transformer": f"target: {glob}MLP"})
    with pytest.raises(ConfigError, match=r"^\S+tiny_sparsesync\.pt: unsupported architecture: .*GlobalMLP"):
        build_sparsesync(dataclasses.replace(tiny, config=cfg))


def test_checkpoint_without_config_is_refused(tiny: Checkpoint) -> None:
    with pytest.raises(CheckpointError, match="carries no config"):
        build_sparsesync(dataclasses.replace(tiny, config=None))
