"""Synchformer's model inputs from a 5 s window, in torch (no torchaudio, no torchvision).

A window (125 frames at 25 fps, 80,000 samples at 16 kHz) is cut into 14 half-overlapping
segments of 0.64 s: 16 frames with a stride of 8, and 10,240 samples with a stride of 5,120.
Together they span 7.5 segments = 4.8 s, centred in the window as the reference's test
transforms do: frames 2..121 and samples 1,280..78,079 (``USED_FRAMES`` / ``USED_SAMPLES``,
half-open). The first 2 and last 3 frames, and the first 1,280 and last 1,920 samples, are
never looked at.

Video: uint8 -> float16 / 255 -> (x - 0.5) / 0.5, in float16 as the reference does (its
``RGBToHalfToZeroOne`` + ``RGBNormalize``), then float32 for the model.

Audio, per segment: power mel spectrogram (n_fft 1024, 400-sample periodic Hann window, hop 160,
centred with reflect padding, 128 HTK mels from 0 to 8 kHz, no filter normalisation: the
defaults of ``torchaudio.transforms.MelSpectrogram``), ``log(x + 1e-6)``, zero-pad from 65 to 66
time frames, then AST's normalisation ``(x + 4.2677393) / (2 * 4.5689974)``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch.nn import functional as F

from ..clock import FRAMES_PER_WINDOW, SAMPLE_RATE, SAMPLES_PER_WINDOW, VIDEO_FPS

N_SEGMENTS = 14
SEGMENT_FRAMES = 16
SEGMENT_STRIDE_FRAMES = SEGMENT_FRAMES // 2  # step_size_seg = 0.5
SEGMENT_SAMPLES = SEGMENT_FRAMES * SAMPLE_RATE // VIDEO_FPS  # 10,240 = 0.64 s
SEGMENT_STRIDE_SAMPLES = SEGMENT_SAMPLES // 2  # 5,120
# The segments cover (14 * 0.5 + 0.5) segment lengths; the reference centres that span with
# floor((125 - 120) / 2) = 2 frames before it, and starts the audio at the same time (frame 2 =
# 0.08 s = sample 1,280).
_SPAN_FRAMES = (N_SEGMENTS - 1) * SEGMENT_STRIDE_FRAMES + SEGMENT_FRAMES  # 120
FIRST_FRAME = (FRAMES_PER_WINDOW - _SPAN_FRAMES) // 2  # 2
FIRST_SAMPLE = FIRST_FRAME * SAMPLE_RATE // VIDEO_FPS  # 1,280
USED_FRAMES = (FIRST_FRAME, FIRST_FRAME + _SPAN_FRAMES)  # (2, 122): frames the model sees, half-open
USED_SAMPLES = (
    FIRST_SAMPLE,
    FIRST_SAMPLE + (N_SEGMENTS - 1) * SEGMENT_STRIDE_SAMPLES + SEGMENT_SAMPLES,
)  # (1280, 78080): samples the model hears, half-open
USED_SEC = _SPAN_FRAMES / VIDEO_FPS  # 4.8 s of each 5 s window

RGB_MEAN = 0.5
RGB_STD = 0.5

N_FFT = 1024
WIN_LENGTH = 400  # samples (25 ms)
HOP_LENGTH = 160  # samples (10 ms)
N_MELS = 128
LOG_EPS = 1e-6
SPEC_FRAMES = 66  # the AST input length; a segment gives 1 + 10240 // 160 = 65 frames
AST_MEAN = -4.2677393  # the reference's AudioNormalizeAST statistics
AST_STD = 4.5689974


def video_input(frames: torch.Tensor) -> torch.Tensor:
    """``(..., 125, 3, 224, 224)`` uint8 frames -> ``(..., 14, 16, 3, 224, 224)`` float32."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.dim() < 4 or frames.shape[-4] != FRAMES_PER_WINDOW or frames.shape[-3] != 3:
        raise ValueError(f"frames must be (..., {FRAMES_PER_WINDOW}, 3, H, W), got {tuple(frames.shape)}")
    starts = torch.arange(N_SEGMENTS) * SEGMENT_STRIDE_FRAMES + FIRST_FRAME
    index = (starts[:, None] + torch.arange(SEGMENT_FRAMES)).to(frames.device)  # (14, 16)
    segments = frames[..., index, :, :, :]  # (..., 14, 16, 3, H, W)
    # Half precision on purpose: the reference normalises in float16. Doing it in float32 moves
    # the fixture's logits by 8e-3, most of the 1e-2 tolerance.
    x = segments.half().div(255.0)
    x = x.sub(torch.tensor(RGB_MEAN, dtype=torch.float16)).div(torch.tensor(RGB_STD, dtype=torch.float16))
    return x.float()


@lru_cache(maxsize=4)
def _mel_filterbank_cpu(n_freqs: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    return mel_filterbank(n_freqs, n_mels, sample_rate)


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)  # HTK


def mel_filterbank(
    n_freqs: int = N_FFT // 2 + 1, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE
) -> torch.Tensor:
    """``(n_freqs, n_mels)`` triangular HTK-mel filters from 0 Hz to Nyquist, unnormalised.

    The construction (and its float32 arithmetic) is that of ``torchaudio.functional.
    melscale_fbanks(..., norm=None, mel_scale="htk")``: mel points evenly spaced between the mel
    values of 0 Hz and sr/2, mapped back to Hz; filter i rises linearly from point i to point
    i+1 and falls to point i+2, evaluated at the FFT bin frequencies.
    """
    bin_hz = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_pts = torch.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sample_rate // 2)), n_mels + 2)
    hz_pts = 700.0 * (10.0 ** (mel_pts / 2595.0) - 1.0)
    widths = hz_pts[1:] - hz_pts[:-1]  # (n_mels + 1)
    to_pts = hz_pts[None, :] - bin_hz[:, None]  # (n_freqs, n_mels + 2): point minus bin frequency
    rising = -to_pts[:, :-2] / widths[:-1]  # (bin - left) / (centre - left)
    falling = to_pts[:, 2:] / widths[1:]  # (right - bin) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def log_mel(segments: torch.Tensor) -> torch.Tensor:
    """``(..., samples)`` float32 -> log power mel spectrogram ``(..., 128, 1 + samples // 160)``."""
    lead = segments.shape[:-1]
    flat = segments.reshape(-1, segments.shape[-1])
    window = torch.hann_window(WIN_LENGTH, periodic=True, dtype=flat.dtype, device=flat.device)
    spec = torch.stft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=window,  # zero-padded to n_fft, centred, by torch.stft
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    power = spec.abs().pow(2.0)  # (n, freqs, frames)
    fb = _mel_filterbank_cpu(N_FFT // 2 + 1, N_MELS, SAMPLE_RATE).to(power.device, power.dtype)
    mel = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)  # (n, mels, frames)
    return torch.log(mel + LOG_EPS).reshape(*lead, N_MELS, mel.shape[-1])


def audio_input(samples: torch.Tensor) -> torch.Tensor:
    """``(..., 80000)`` float32 mono samples -> ``(..., 14, 1, 128, 66)`` float32."""
    samples = torch.as_tensor(samples)
    if not samples.is_floating_point() or samples.dim() < 1 or samples.shape[-1] != SAMPLES_PER_WINDOW:
        raise ValueError(
            f"samples must be float (..., {SAMPLES_PER_WINDOW}), got {samples.dtype} {tuple(samples.shape)}"
        )
    samples = samples.float()
    starts = torch.arange(N_SEGMENTS) * SEGMENT_STRIDE_SAMPLES + FIRST_SAMPLE
    index = (starts[:, None] + torch.arange(SEGMENT_SAMPLES)).to(samples.device)  # (14, 10240)
    spec = log_mel(samples[..., index])  # (..., 14, 128, 65)
    # Pad after the log, with zeros (not log(eps)), before normalising: the reference's order.
    spec = F.pad(spec, (0, SPEC_FRAMES - spec.shape[-1]), mode="constant", value=0.0)
    spec = (spec - AST_MEAN) / (2 * AST_STD)
    return spec.unsqueeze(-3)
