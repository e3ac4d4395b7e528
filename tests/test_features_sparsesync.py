"""The paper's pre-processing against the reference tensors of case 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sparsesync_cli.features.sparsesync import audio_input, video_input


@pytest.fixture(scope="module")
def case0(shared_dir: Path) -> dict[str, np.ndarray]:
    with np.load(shared_dir / "fixtures/sparsesync/case0_tensors.npz") as z:
        return {k: z[k] for k in ("frames_uint8", "audio_f32", "audio_input", "video_input")}


def test_spectrogram_matches_reference(case0: dict[str, np.ndarray]) -> None:
    spec = audio_input(case0["audio_f32"])
    assert spec.shape == (1, 257, 626) and spec.dtype == torch.float32
    # 1e-3 is far below what a biased std (5e-3) or a symmetric window (0.7) would give
    torch.testing.assert_close(spec[0], torch.from_numpy(case0["audio_input"]), atol=1e-3, rtol=0)


def test_spectrogram_is_standardised_per_frequency_bin(case0: dict[str, np.ndarray]) -> None:
    spec = audio_input(case0["audio_f32"])[0]
    assert spec.mean(dim=1).abs().max() < 1e-4
    assert (spec.std(dim=1) - 1).abs().max() < 1e-4


def test_spectrogram_batches_like_single_windows(case0: dict[str, np.ndarray]) -> None:
    a = torch.from_numpy(case0["audio_f32"])
    batch = torch.stack([a, 0.5 * a.flip(0)])
    out = audio_input(batch)
    assert out.shape == (2, 1, 257, 626)
    torch.testing.assert_close(out[1], audio_input(batch[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], audio_input(a), atol=1e-5, rtol=0)


def test_frames_match_reference(case0: dict[str, np.ndarray]) -> None:
    vid = video_input(case0["frames_uint8"])
    assert vid.shape == (125, 3, 224, 224) and vid.dtype == torch.float32
    # the fixture keeps every 16th pixel of each row and column, starting at 0
    sub = vid[..., ::16, ::16]
    torch.testing.assert_close(sub, torch.from_numpy(case0["video_input"]), atol=1e-5, rtol=0)
    # ImageNet normalisation per channel: a mid-grey frame lands on (0.5 - mean) / std
    grey = video_input(np.full((1, 3, 2, 2), 128, dtype=np.uint8))
    expected = (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(grey[0, :, 0, 0], expected)


def test_wrong_input_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        video_input(np.zeros((1, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="float"):
        audio_input(np.zeros(1000, dtype=np.int16))
