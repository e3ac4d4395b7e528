"""SparseSync's test-time pre-processing: frames and samples of a 5 s window -> model inputs.

The maths of the reference ``transform_sequence_test`` (``RGBToFloatToZeroOne``,
``RGBNormalize``, ``AudioSpectrogram``, ``AudioLog``, ``AudioStandardNormalize``), written in
plain torch so torchaudio and torchvision are not needed.
"""

from __future__ import annotations

import numpy as np
import torch

# ImageNet statistics (torchvision's), per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

N_FFT = 512  # samples (32 ms at 16 kHz); 257 frequency bins
HOP_LENGTH = 128  # samples (8 ms): 80,000 samples -> 626 frames with centring
LOG_EPS = 1e-6  # added to the power before the log
STD_EPS = 1e-6  # added to the per-bin std before dividing


def video_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames ``(..., T, 3, H, W)`` -> float32, scaled to [0, 1], ImageNet-normalised."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {x.dtype}")
    if x.ndim < 4 or x.shape[-3] != 3:
        raise ValueError(f"expected frames shaped (..., T, 3, H, W), got {tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(3, 1, 1)
    # Same operation order as the reference (divide by 255, then (x - mean) / std) so the
    # rounding matches too; in place on the one float copy: a window's float frames are 75 MB,
    # and three more of them per window were three more passes over fresh memory.
    return x.to(torch.float32).div_(255).sub_(mean).div_(std)


def audio_input(samples: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Mono float samples ``(..., N)`` at 16 kHz -> normalised log-spectrogram ``(..., 1, 257, frames)``.

    Power spectrogram (n_fft 512, hop 128, periodic Hann window, centred with reflect padding),
    ``log(x + 1e-6)``, then each frequency bin is standardised over time with the unbiased std:
    ``(x - mean_t) / (std_t + 1e-6)``. For 80,000 samples this gives (1, 257, 626).
    """
    x = torch.as_tensor(samples)
    if not torch.is_floating_point(x):
        raise ValueError(f"expected float samples, got {x.dtype}")
    x = x.to(torch.float32)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32, device=x.device)
    spec = torch.stft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    power = spec.abs().pow(2.0)
    logspec = torch.log(power + LOG_EPS)
    mean = logspec.mean(dim=-1, keepdim=True)
    std = logspec.std(dim=-1, keepdim=True)  # unbiased, as torch's default
    out = (logspec - mean) / (std + STD_EPS)
    return out.reshape(*lead, 1, *out.shape[-2:])
