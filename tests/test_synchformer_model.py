"""Synchformer against the authors' code: the reference outputs in ../shared/fixtures/synchformer.

The fixture weights are a reduced-depth model (1 MotionFormer block, 1 AST layer, 1 global
layer) with random values; only equality with the reference matters.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sparsesync_cli.checkpoints.config import load_config
from sparsesync_cli.errors import CheckpointError
from sparsesync_cli.features.synchformer import audio_input, video_input
from sparsesync_cli.models.cls_pool import ClsPoolingLayer
from sparsesync_cli.models.synchformer import (
    Synchformer,
    SynchformerArch,
    infer_arch,
    is_synchformer_state_dict,
    offset_grid,
)

LOGIT_TOL = 1e-2  # the fixtures' README: max |logit - golden| <= 1e-2 and the same argmax
FEATURE_TOL = 1e-2  # relative to the largest reference value
FULL_PARAMS = 237_460_245


@pytest.fixture(scope="session")
def fixture_dir(shared_dir):
    return shared_dir / "fixtures" / "synchformer"


@pytest.fixture(scope="session")
def tiny_state_dict(fixture_dir):
    """The reference's bare (Hugging Face layout) fp16 state dict, loaded once."""
    return torch.load(fixture_dir / "tiny_synchformer_state_dict.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def tiny_model(tiny_state_dict):
    return Synchformer.from_state_dict(tiny_state_dict)


@pytest.fixture(scope="session")
def case0(fixture_dir):
    with np.load(fixture_dir / "case0_tensors.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.fixture(scope="session")
def case0_outputs(tiny_model, case0):
    """Run case 0 once from raw frames and samples through our features and every model stage."""
    vid = video_input(case0["frames_uint8"])[None]
    aud = audio_input(case0["audio_f32"])[None]
    with torch.inference_mode():
        vfeat = tiny_model.visual_features(vid)
        afeat = tiny_model.audio_features(aud)
        logits = tiny_model.offset_logits(vfeat, afeat)
    return {"vfeat": vfeat[0], "afeat": afeat[0], "logits": logits[0]}


def full_keys(fixture_dir) -> dict:
    return json.loads((fixture_dir / "state_dict_keys_full.json").read_text())


def meta_state_dict(keys: dict) -> dict[str, torch.Tensor]:
    """A state dict with the shapes of ``keys`` and no storage."""
    return {k: torch.empty(v["shape"], device="meta") for k, v in keys.items()}


def test_case0_logits_match_the_reference(case0, case0_outputs):
    logits, golden = case0_outputs["logits"], case0["logits"]
    assert (logits - golden).abs().max().item() <= LOGIT_TOL
    assert logits.argmax().item() == golden.argmax().item()


@pytest.mark.parametrize("stage", ["vfeat", "afeat"])
def test_case0_stage_features_match_the_reference(case0, case0_outputs, stage):
    ours, ref = case0_outputs[stage], case0[stage]
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= FEATURE_TOL * ref.abs().max().item()


def test_full_size_model_has_the_official_keys_shapes_and_size(fixture_dir):
    expected = full_keys(fixture_dir)
    with torch.device("meta"):
        model = Synchformer(SynchformerArch(vis_depth=12, aud_depth=12, n_layer=3))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: v["shape"] for k, v in expected.items()}
    assert sum(p.numel() for p in model.parameters()) == FULL_PARAMS


def test_depths_are_inferred_from_the_keys(fixture_dir, tiny_state_dict):
    tiny = infer_arch(tiny_state_dict)
    assert (tiny.vis_depth, tiny.aud_depth, tiny.n_layer) == (1, 1, 1)
    full = infer_arch(meta_state_dict(full_keys(fixture_dir)))
    assert (full.vis_depth, full.aud_depth, full.n_layer) == (12, 12, 3)
    assert (full.num_classes, full.n_tokens, full.n_embd) == (21, 198, 768)


def test_fp16_weights_load_as_float32_in_eval_mode(tiny_model, tiny_state_dict):
    assert not tiny_model.training
    assert {p.dtype for p in tiny_model.parameters()} == {torch.float32}
    key = "transformer.off_head.weight"
    assert torch.equal(tiny_model.state_dict()[key], tiny_state_dict[key].float())


def test_a_matching_config_is_accepted(fixture_dir, tiny_state_dict):
    cfg = load_config(fixture_dir / "cfg-tiny_synchformer.yaml")
    model = Synchformer.from_state_dict(tiny_state_dict, cfg)
    assert model.arch.n_head == 8 and model.arch.n_layer == 1


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("model.params.transformer.params.n_layer", 3),
        ("data.num_off_cls", 3),
        ("model.params.transformer.params.n_head", 7),
        ("model.target", "model.sparsesync.SparseSync"),
    ],
)
def test_a_config_that_disagrees_with_the_weights_is_refused(fixture_dir, tiny_state_dict, dotted, value):
    cfg = load_config(fixture_dir / "cfg-tiny_synchformer.yaml")
    node = cfg
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(CheckpointError, match="config does not match the weights") as err:
        Synchformer.from_state_dict(tiny_state_dict, cfg, path="cfg-tiny.pt")
    assert "\n" not in str(err.value) and str(err.value).startswith("cfg-tiny.pt: ")


def test_the_family_is_recognised_from_keys(fixture_dir, shared_dir, tiny_state_dict):
    sparsesync = json.loads(
        (shared_dir / "fixtures" / "sparsesync" / "state_dict_keys_full_21cls.json").read_text()
    )
    assert is_synchformer_state_dict(tiny_state_dict.keys())
    assert is_synchformer_state_dict(full_keys(fixture_dir))
    assert not is_synchformer_state_dict(sparsesync)
    assert not is_synchformer_state_dict([])
    with pytest.raises(CheckpointError, match="not a Synchformer state dict"):
        Synchformer.from_state_dict(meta_state_dict(sparsesync))


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_weights_that_do_not_fit_are_refused_in_one_line(tiny_state_dict, change):
    sd = dict(tiny_state_dict)
    if change == "missing":
        del sd["vfeat_extractor.norm.bias"]
    elif change == "unexpected":
        sd["vfeat_extractor.head.weight"] = torch.zeros(3)
    else:
        sd["vproj.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError, match="do not fit the Synchformer architecture") as err:
        Synchformer.from_state_dict(sd, path="weights.pth")
    assert "\n" not in str(err.value)


def test_batches_and_segments_are_independent(tiny_model, case0, case0_outputs):
    """Windows batched together, and segments in another order, give the same features."""
    vid = video_input(case0["frames_uint8"])[None, :2]  # two segments keep it quick
    aud = audio_input(case0["audio_f32"])[None]
    with torch.inference_mode():
        v_batch = tiny_model.visual_features(torch.cat((vid, vid.flip(1))))
        a_batch = tiny_model.audio_features(torch.cat((aud, aud.flip(1))))
    v_alone, a_alone = case0_outputs["vfeat"][:2], case0_outputs["afeat"]
    torch.testing.assert_close(v_batch[0], v_alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(v_batch[1], v_alone.flip(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a_batch[0], a_alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a_batch[1], a_alone.flip(0), rtol=1e-4, atol=1e-4)


def test_cls_pooling_is_a_pre_norm_gelu_encoder_layer_read_at_cls():
    """Our pooling layer == torch's TransformerEncoderLayer (as the authors configure it), row 0."""
    torch.manual_seed(0)
    ours = ClsPoolingLayer(dim=32, n_head=4, mlp_dim=64).eval()
    for p in ours.parameters():
        nn.init.normal_(p, std=0.3)
    torch_layer = nn.TransformerEncoderLayer(
        d_model=32,
        nhead=4,
        dim_feedforward=64,
        dropout=0.0,
        activation=nn.GELU(),
        layer_norm_eps=1e-6,
        batch_first=True,
        norm_first=True,
    ).eval()
    state = {k: v for k, v in ours.state_dict().items() if k != "cls_token"}
    torch_layer.load_state_dict(state, strict=True)
    x = torch.randn(5, 7, 32)
    with torch.inference_mode():
        expected = torch_layer(torch.cat((ours.cls_token.expand(5, -1, -1), x), dim=1))[:, 0]
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_offset_grid(fixture_dir, case0):
    golden = json.loads((fixture_dir / "golden_logits.json").read_text())[0]["grid"]
    grid = offset_grid()
    assert grid.dtype == torch.float32
    assert grid.tolist() == golden
    cfg = load_config(fixture_dir / "cfg-tiny_synchformer.yaml")
    assert offset_grid(cfg).tolist() == golden
    cfg["data"].update(max_off_sec=1, num_off_cls=3)
    assert offset_grid(cfg).tolist() == [-1.0, 0.0, 1.0]
