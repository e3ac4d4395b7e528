"""The optimised inference path computes the same function as the plain models.

Small random inputs check the rewrites layer by layer (BatchNorm folding, channels-last S3D and
ResNet, both the oneDNN and the fallback convolution); case 0 of the reference fixtures checks the
optimised SparseSync end to end against the authors' code, from raw frames and samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sparsesync_cli.checkpoints.loading import load_checkpoint
from sparsesync_cli.features.sparsesync import audio_input, video_input
from sparsesync_cli.models import fast
from sparsesync_cli.models.fast import fold_batchnorm, optimize_for_inference
from sparsesync_cli.models.resnet_audio import ResNet18Audio
from sparsesync_cli.models.s3d import S3D
from sparsesync_cli.models.sparsesync import SparseSync, build_sparsesync

FIX = "fixtures/sparsesync"
LOGIT_TOL = 1e-2  # the fixture README's tolerance
NOISE_TOL = 2e-3  # what float rounding alone moves case 0's logits by is ~2e-4
REL_TOL = 1e-4  # folded vs unfused, relative to the output's scale


def _random_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics, so that folding them is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    assert got.shape == ref.shape
    return ((got - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("dims", [2, 3])
def test_folded_batchnorm_equals_conv_then_batchnorm(dims: int) -> None:
    torch.manual_seed(0)
    conv_cls, bn_cls = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    conv = conv_cls(8, 16, 3, padding=1, bias=True)
    bn = _random_batchnorm(bn_cls(16, eps=1e-3))
    x = torch.randn(2, 8, *(6,) * dims)
    weight, bias = fold_batchnorm(conv, bn)
    folded = (nn.functional.conv2d if dims == 2 else nn.functional.conv3d)(x, weight, bias, padding=1)
    with torch.no_grad():
        ref = bn(conv(x))
    assert _rel_err(folded, ref) <= REL_TOL
    assert (folded - conv(x)).abs().max() > 0.1  # the BatchNorm really did something


@pytest.fixture(scope="module")
def s3d() -> S3D:
    torch.manual_seed(0)
    return _random_batchnorm(S3D())


@pytest.mark.parametrize("pointwise", [True, False], ids=["onednn", "fallback"])
@pytest.mark.parametrize("batch", [1, 2])
def test_fast_s3d_matches_s3d(s3d: S3D, monkeypatch: pytest.MonkeyPatch, pointwise: bool, batch: int) -> None:
    monkeypatch.setattr(fast, "_POINTWISE", fast._POINTWISE and pointwise)
    x = torch.randn(batch, 3, 16, 64, 64)  # the full 125x224x224 is covered by case 0 below
    with torch.inference_mode():
        ref = s3d(x)
        got = optimize_for_inference(s3d)(x)
    assert got.shape == ref.shape == (batch, 1024, 2, 2, 2)
    assert _rel_err(got, ref) <= REL_TOL


@pytest.mark.parametrize("frames", [23, 24])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 100])
def test_chunked_stem_equals_the_whole_stem(s3d: S3D, frames: int, chunk: int) -> None:
    stem = optimize_for_inference(s3d).stem
    x = torch.randn(1, 3, frames, 32, 32)
    with torch.inference_mode():
        whole = stem.pool(stem.conv_t(stem.conv_s(x)))  # the unchunked computation
        stem.chunk = chunk
        got = stem(torch.cat([x, x.flip(2)]))
    assert got.shape == (2, 64, 12, 8, 8)
    torch.testing.assert_close(got[0], whole[0], rtol=0, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)


POOLS = [
    ((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # S3D's spatial pools
    ((3, 3, 3), (1, 1, 1), (1, 1, 1)),  # the inception blocks' pool
    ((3, 3, 3), (2, 2, 2), (1, 1, 1)),  # temporally strided: left to nn.MaxPool3d
    ((2, 3, 3), (1, 1, 1), (1, 0, 1)),
    ((4, 1, 1), (1, 1, 1), (2, 0, 0)),
    ((3, 2, 2), (1, 2, 2), (0, 0, 0)),
]


@pytest.mark.parametrize("kernel,stride,padding", POOLS)
@pytest.mark.parametrize("frames", [1, 2, 3, 7])
def test_framewise_max_pool_equals_max_pool_3d_bit_for_bit(kernel, stride, padding, frames: int) -> None:
    pool = nn.MaxPool3d(kernel, stride, padding)
    x = torch.randn(1, 6, frames, 9, 10).contiguous(memory_format=torch.channels_last_3d)
    x[0, 2, 0] = float("-inf")  # the padding's value is never the answer where data exists
    if frames + 2 * padding[0] < kernel[0]:  # no output: the same error as the pool's own
        with pytest.raises(RuntimeError) as ref_error:
            pool(x)
        with pytest.raises(RuntimeError, match="Output size is too small") as got_error:
            fast.FramewiseMaxPool3d(pool)(x)
        assert str(got_error.value) == str(ref_error.value)
        return
    got, ref = fast.FramewiseMaxPool3d(pool)(x), pool(x)
    assert torch.equal(got, ref)
    # The strides of a dense channels-last 3-D tensor, the batch's too: oneDNN took an
    # undersized batch stride for a foreign layout: S3D ran ~8 % slower.
    assert got.stride() == ref.stride()


def test_mixed_block_pools_its_branches_as_the_pool_after_it_would() -> None:
    torch.manual_seed(2)
    block = _random_batchnorm(S3D()).base[6]  # Mixed_3c, followed by the 3x3x3/2 max-pool
    pool = nn.MaxPool3d(3, 2, 1)
    x = torch.rand(1, 256, 5, 8, 8).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        got = fast.FastMixed(block, pool)(x)
        ref = pool(fast.FastMixed(block)(x))
    assert torch.equal(got, ref) and got.shape == (1, 480, 3, 4, 4)


def test_audio_stem_hands_on_channels_last() -> None:
    # A one-channel spectrogram is as much channels-first as channels-last; oneDNN then answered
    # channels-first and the max-pool after the stem ran 20x slower (10 ms of a 76 ms audio net).
    torch.manual_seed(3)
    stem = optimize_for_inference(_random_batchnorm(ResNet18Audio())).stem
    with torch.inference_mode():
        y = stem(torch.randn(1, 1, 65, 97))
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


def test_fast_resnet_matches_resnet() -> None:
    torch.manual_seed(1)
    net = _random_batchnorm(ResNet18Audio())
    x = torch.randn(2, 1, 65, 97)
    with torch.inference_mode():
        ref = net(x)
        got = optimize_for_inference(net)(x)
    assert got.shape == ref.shape == (2, 512, 3, 4)
    assert _rel_err(got, ref) <= REL_TOL


def test_optimize_leaves_the_loaded_model_alone(s3d: S3D) -> None:
    before = {k: v.clone() for k, v in s3d.state_dict().items()}
    optimize_for_inference(s3d)
    after = s3d.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_synchformer_is_returned_as_it_is() -> None:
    from sparsesync_cli.models.synchformer import Synchformer, SynchformerArch

    with torch.device("meta"):
        model = Synchformer(SynchformerArch(vis_depth=1, aud_depth=1, n_layer=1)).train()
    assert optimize_for_inference(model) is model and not model.training


def test_optimize_refuses_a_model_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="no optimised inference path for Linear"):
        optimize_for_inference(nn.Linear(2, 2))


@pytest.fixture(scope="module")
def case0(shared_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(shared_dir / FIX / "case0_tensors.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.fixture(scope="module")
def loaded(shared_dir: Path) -> SparseSync:
    return build_sparsesync(load_checkpoint(shared_dir / FIX / "tiny_sparsesync.pt"))


@pytest.fixture(scope="module")
def fast_run(loaded: SparseSync, case0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The optimised model on case 0, from raw frames and samples; one pass, every stage kept."""
    model = optimize_for_inference(loaded)
    with torch.inference_mode():
        vid = video_input(case0["frames_uint8"])[None]
        aud = audio_input(case0["audio_f32"])[None]
        vfeat = model.visual_features(vid)
        vbridge = model.visual_bridge(vfeat)
        afeat = model.audio_features(aud)
        return {
            "model": model,
            "vfeat": vfeat[0],
            "vbridge": vbridge[0],
            "afeat": afeat[0],
            "logits": model.head(vbridge, afeat)[0],
        }


def test_optimized_sparsesync_logits_match_reference(fast_run: dict, case0: dict[str, torch.Tensor]) -> None:
    err = (fast_run["logits"] - case0["logits"]).abs().max().item()
    assert err <= LOGIT_TOL
    assert err <= NOISE_TOL  # rounding only: a wrong fold or layout would move them by O(1)
    assert fast_run["logits"].argmax() == case0["logits"].argmax()


@pytest.mark.parametrize("stage", ["vfeat", "vbridge", "afeat"])
def test_optimized_sparsesync_stages_match_reference(fast_run: dict, case0: dict, stage: str) -> None:
    assert _rel_err(fast_run[stage], case0[stage]) <= 1e-3


def test_optimized_sparsesync_is_still_a_sparsesync(fast_run: dict, loaded: SparseSync) -> None:
    model = fast_run["model"]
    assert isinstance(model, SparseSync) and not model.training
    assert model.arch == loaded.arch
    assert model.transformer is loaded.transformer  # shared, not copied
    assert any(k.startswith("vfeat_extractor.base.") for k in loaded.state_dict())  # still loadable
