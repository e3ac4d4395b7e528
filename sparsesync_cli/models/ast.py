"""AST (Audio Spectrogram Transformer): Synchformer's audio feature extractor, in plain torch.

The semantics are those of Hugging Face ``transformers``' ``ASTModel`` with its default
``ASTConfig`` (768-d, 12 heads, MLP 3072, exact GELU, LayerNorm eps 1e-12, 16x16 patches with a
10x10 stride, a CLS and a distillation token): a ``(128 mels, 66 frames)`` log-mel segment
becomes 12 x 6 overlapping patches, the encoder runs pre-norm ViT layers, and a final LayerNorm
closes it. Synchformer then drops the two special tokens and pools the 12 frequency patches of
each of the 6 time columns with a CLS-pooling layer: ``(N, 128, 66) -> (N, 6, 768)``.

Parameter names follow the official state dict (``afeat_extractor.*`` without the prefix);
the position embeddings are those the authors truncated to 2 + 12*6 = 74 tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .cls_pool import ClsPoolingLayer

DIM = 768
N_HEAD = 12
MLP_DIM = 3072
PATCH = 16  # patch side in spectrogram bins/frames
STRIDE = 10  # patch stride along both frequency and time
N_MELS = 128
SPEC_FRAMES = 66  # time frames per segment after padding (the reference's max_spec_t)
FREQ_PATCHES = (N_MELS - PATCH) // STRIDE + 1  # 12
TIME_PATCHES = (SPEC_FRAMES - PATCH) // STRIDE + 1  # 6
N_SPECIAL = 2  # CLS and distillation tokens
LAYER_NORM_EPS = 1e-12  # ASTConfig.layer_norm_eps (ViT's 1e-6 would be wrong here)


class _PatchEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.projection = nn.Conv2d(1, DIM, PATCH, stride=STRIDE)


class ASTEmbeddings(nn.Module):
    """Patches + ``[CLS, DIST]`` + learned position embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.patch_embeddings = _PatchEmbeddings()
        n_pos = N_SPECIAL + FREQ_PATCHES * TIME_PATCHES
        self.position_embeddings = nn.Parameter(torch.zeros(1, n_pos, DIM))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``spec (N, mels, frames)`` -> tokens ``(N, 2 + 12*6, D)``, frequency-major."""
        n = spec.shape[0]
        x = self.patch_embeddings.projection(spec.unsqueeze(1)).flatten(2).transpose(1, 2)
        special = torch.cat((self.cls_token, self.distillation_token), dim=1).expand(n, -1, -1)
        return torch.cat((special, x), dim=1) + self.position_embeddings


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(DIM, DIM)
        self.key = nn.Linear(DIM, DIM)
        self.value = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, N_HEAD, DIM // N_HEAD).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
        return y.transpose(1, 2).reshape(n, length, DIM)


class _Dense(nn.Module):
    """A module whose only child is ``dense`` (HF's ``ASTSelfOutput``/``ASTIntermediate``/``ASTOutput``)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _SelfAttention()
        self.output = _Dense(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class ASTLayer(nn.Module):
    """Pre-norm ViT layer: ``x + attn(ln_before(x))``, then ``x + mlp(ln_after(x))``."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()
        self.intermediate = _Dense(DIM, MLP_DIM)
        self.output = _Dense(MLP_DIM, DIM)
        self.layernorm_before = nn.LayerNorm(DIM, eps=LAYER_NORM_EPS)
        self.layernorm_after = nn.LayerNorm(DIM, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _Encoder(nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(ASTLayer() for _ in range(depth))


class ASTModel(nn.Module):
    """The transformer proper: ``(N, 128, 66) -> (N, 2 + 72, 768)`` after the final LayerNorm."""

    def __init__(self, depth: int = 12) -> None:
        super().__init__()
        self.embeddings = ASTEmbeddings()
        self.encoder = _Encoder(depth)
        self.layernorm = nn.LayerNorm(DIM, eps=LAYER_NORM_EPS)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(spec)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class AST(nn.Module):
    """Log-mel segments ``(N, 128, 66)`` -> per-time-column features ``(N, 6, 768)``.

    ``depth`` is the number of encoder layers (12 in the official model).
    """

    def __init__(self, depth: int = 12) -> None:
        super().__init__()
        self.ast = ASTModel(depth)
        self.freq_attn_agg = ClsPoolingLayer(DIM, N_HEAD, MLP_DIM)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        n, mels, frames = spec.shape
        if (mels, frames) != (N_MELS, SPEC_FRAMES):
            raise ValueError(
                f"AST expects ({N_MELS} mels, {SPEC_FRAMES} frames) segments, got ({mels}, {frames})"
            )
        x = self.ast(spec)[:, N_SPECIAL:]  # (N, f*t, D), frequency-major
        # Pool over frequency for each time column: (N, f, t, D) -> (N*t, f, D).
        x = (
            x.view(n, FREQ_PATCHES, TIME_PATCHES, DIM)
            .transpose(1, 2)
            .reshape(n * TIME_PATCHES, FREQ_PATCHES, DIM)
        )
        return self.freq_attn_agg(x).view(n, TIME_PATCHES, DIM)
