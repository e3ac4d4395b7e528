"""Synchformer's input features: the reference's test transforms, reproduced in torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsesync_cli.clock import FRAMES_PER_WINDOW, SAMPLE_RATE, SAMPLES_PER_WINDOW, VIDEO_FPS
from sparsesync_cli.features import synchformer as sf


@pytest.fixture(scope="module")
def case0(shared_dir):
    with np.load(shared_dir / "fixtures" / "synchformer" / "case0_tensors.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in ("frames_uint8", "audio_f32", "audio_input")}


def test_audio_input_matches_the_reference(case0):
    ours, ref = sf.audio_input(case0["audio_f32"]), case0["audio_input"]
    assert ours.shape == ref.shape == (14, 1, 128, 66)
    assert ours.dtype == torch.float32
    assert (ours - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()


def test_video_input_segments_and_normalisation(case0):
    frames = case0["frames_uint8"]
    x = sf.video_input(frames)
    assert x.shape == (14, 16, 3, 224, 224) and x.dtype == torch.float32
    for seg, step in [(0, 0), (5, 9), (13, 15)]:
        src = frames[2 + 8 * seg + step].double() / 255.0
        assert (x[seg, step].double() - (src - 0.5) / 0.5).abs().max().item() < 2e-3
    # the normalisation was done in float16, as the reference does
    assert torch.equal(x, x.half().float())
    assert x.min().item() >= -1.0 and x.max().item() <= 1.0


def test_geometry_constants():
    assert sf.USED_FRAMES == (2, 122) and sf.USED_SAMPLES == (1280, 78080)
    assert pytest.approx(4.8) == sf.USED_SEC
    # the video and audio spans start and end at the same instant
    assert sf.USED_FRAMES[0] / VIDEO_FPS == sf.USED_SAMPLES[0] / SAMPLE_RATE
    assert sf.USED_FRAMES[1] / VIDEO_FPS == sf.USED_SAMPLES[1] / SAMPLE_RATE


def test_only_the_used_frames_matter():
    frames = torch.zeros(FRAMES_PER_WINDOW, 3, 4, 4, dtype=torch.uint8)
    frames[:, 0] = torch.arange(FRAMES_PER_WINDOW, dtype=torch.uint8)[:, None, None]
    x = sf.video_input(frames)  # (14, 16, 3, 4, 4)
    index = torch.round((x[:, :, 0, 0, 0].double() * 0.5 + 0.5) * 255).long()
    expected = torch.arange(14)[:, None] * 8 + torch.arange(16) + 2
    assert torch.equal(index, expected)
    seen = set(index.flatten().tolist())
    assert seen == set(range(*sf.USED_FRAMES))


def test_only_the_used_samples_matter():
    torch.manual_seed(0)
    samples = torch.randn(SAMPLES_PER_WINDOW) * 0.1
    base = sf.audio_input(samples)
    outside = samples.clone()
    outside[: sf.USED_SAMPLES[0]] = 0.9
    outside[sf.USED_SAMPLES[1] :] = -0.9
    assert torch.equal(sf.audio_input(outside), base)
    for n in (sf.USED_SAMPLES[0], sf.USED_SAMPLES[1] - 1):
        inside = samples.clone()
        inside[n] = 0.9
        assert not torch.equal(sf.audio_input(inside), base)


def test_a_tone_lands_in_its_mel_band():
    t = torch.arange(SAMPLES_PER_WINDOW) / SAMPLE_RATE
    x = sf.audio_input(0.5 * torch.sin(2 * math.pi * 1000.0 * t))
    band = x[:, 0, :, :65].mean(dim=(0, 2)).argmax().item()
    # HTK mel filter i peaks at mel point i+1 of 130 between 0 and mel(8 kHz); 1 kHz = 1000 mel
    centre_hz = 700.0 * (10 ** ((band + 1) * (2595.0 * math.log10(1 + 8000 / 700) / 129) / 2595.0) - 1)
    assert abs(centre_hz - 1000.0) < 30.0
    # the 66th frame is the reference's zero padding of the log-mel, normalised
    pad = (0.0 - sf.AST_MEAN) / (2 * sf.AST_STD)
    assert torch.allclose(x[..., 65], torch.full_like(x[..., 65], pad))


def test_mel_filterbank_shape_and_triangles():
    fb = sf.mel_filterbank()
    assert fb.shape == (513, 128)
    assert fb.min().item() == 0.0 and fb.max().item() <= 1.0
    # every filter is non-empty and single-peaked (rises, then falls)
    peaks = fb.argmax(dim=0)
    assert torch.all(fb.sum(dim=0) > 0)
    assert torch.all(peaks[1:] >= peaks[:-1])


def test_leading_batch_dimensions(case0):
    audio = torch.stack((case0["audio_f32"], case0["audio_f32"].flip(0)))
    batched = sf.audio_input(audio)
    assert batched.shape == (2, 14, 1, 128, 66)
    assert torch.equal(batched[1], sf.audio_input(audio[1]))
    frames = case0["frames_uint8"][..., :32, :32]
    pair = torch.stack((frames, frames.flip(0)))
    assert torch.equal(sf.video_input(pair)[1], sf.video_input(frames.flip(0)))


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(124, 3, 8, 8, dtype=torch.uint8),
        torch.zeros(125, 3, 8, 8, dtype=torch.float32),
        torch.zeros(125, 8, 8, 3, dtype=torch.uint8),
    ],
)
def test_video_input_rejects_wrong_frames(bad):
    with pytest.raises(ValueError, match="frames must be"):
        sf.video_input(bad)


@pytest.mark.parametrize("bad", [torch.zeros(79_999), torch.zeros(80_000, dtype=torch.int16)])
def test_audio_input_rejects_wrong_samples(bad):
    with pytest.raises(ValueError, match="samples must be"):
        sf.audio_input(bad)
