"""MotionFormer: Synchformer's visual feature extractor, in plain torch.

A ViT-B/16 for video with *divided* space-time attention (the ``divided_224_16x4`` MotionFormer
configuration the authors start from): a 16-frame segment is cut into 2x16x16 tubelets
(8 x 14 x 14 tokens), a CLS token is prepended, and every block runs

    x = x + time_attention(norm3(x))    # each patch attends to its own position in the 8 steps
    x = x + space_attention(norm1(x))   # each patch attends to the 196 patches of its step
    x = x + mlp(norm2(x))

where in both attentions every patch also sees the CLS token, and the CLS token attends to all
tokens. After the final LayerNorm the CLS token is dropped and a CLS-pooling layer
(:class:`ClsPoolingLayer`) summarises the 14x14 patches of each step: one 768-d vector per
step, ``(N, 3, 16, 224, 224) -> (N, 8, 768)``.

Parameter names follow the official state dict (``vfeat_extractor.*`` without the prefix).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .cls_pool import ClsPoolingLayer

DIM = 768
N_HEAD = 12
MLP_DIM = 3072
PATCH_PX = 16  # spatial patch size in pixels
TUBELET_FRAMES = 2  # frames per token
IMAGE_PX = 224
SEGMENT_FRAMES = 16
GRID = IMAGE_PX // PATCH_PX  # 14 patches per side
STEPS = SEGMENT_FRAMES // TUBELET_FRAMES  # 8 token steps per segment
LAYER_NORM_EPS = 1e-6  # timm-style ViT norm_layer=partial(LayerNorm, eps=1e-6)


class _Patchify(nn.Module):
    """Holds the ``proj`` convolution (the state dict names it ``patch_embed*.proj``)."""

    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj


class DividedAttention(nn.Module):
    """Attention along one factor (time or space) of the (step, patch) token grid.

    ``forward(x (N, 1 + T*P, D), along)`` with ``along`` "time" or "space". The CLS query attends
    to every token; a patch query attends to the CLS token plus the patches that share its
    spatial position (``"time"``: T+1 keys) or its step (``"space"``: P+1 keys).
    """

    def __init__(self, dim: int = DIM, n_head: int = N_HEAD) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, along: str, steps: int = STEPS) -> torch.Tensor:
        if along not in ("time", "space"):
            raise ValueError(f"along must be 'time' or 'space', not {along!r}")
        n, length, dim = x.shape
        h, d = self.n_head, dim // self.n_head
        patches = (length - 1) // steps
        # (3, N, heads, L, d)
        q, k, v = self.qkv(x).view(n, length, 3, h, d).permute(2, 0, 3, 1, 4)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (N, h, 1, d)

        def grid(t: torch.Tensor) -> torch.Tensor:
            # patch tokens are ordered step-major: index = step * patches + patch
            g = t[:, :, 1:].reshape(n, h, steps, patches, d)
            return g.transpose(2, 3) if along == "time" else g  # (N, h, groups, group_len, d)

        def with_cls(t_grid: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            cls = t[:, :, :1].unsqueeze(2).expand(-1, -1, t_grid.shape[2], -1, -1)
            return torch.cat((cls, t_grid), dim=3)

        q_g, k_g, v_g = grid(q), grid(k), grid(v)
        groups = q_g.shape[2]

        def flat(t: torch.Tensor) -> torch.Tensor:
            # 4-D (N, heads*groups, len, d): on CPU only 4-D inputs reach SDPA's fused kernel; a
            # 5-D one falls back to the unfused maths, ~20 % slower for the space attention.
            return t.reshape(n, h * groups, t.shape[3], d)

        out = F.scaled_dot_product_attention(flat(q_g), flat(with_cls(k_g, k)), flat(with_cls(v_g, v)))
        out = out.view(n, h, groups, -1, d)
        if along == "time":
            out = out.transpose(2, 3)
        out = torch.cat((cls_out, out.reshape(n, h, steps * patches, d)), dim=2)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    """``fc1 -> GELU (exact) -> fc2``."""

    def __init__(self, dim: int = DIM, hidden: int = MLP_DIM) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention, then space attention, then the MLP, each pre-norm with a residual."""

    def __init__(self, dim: int = DIM, n_head: int = N_HEAD, mlp_dim: int = MLP_DIM) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = DividedAttention(dim, n_head)
        self.timeattn = DividedAttention(dim, n_head)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), "time")
        x = x + self.attn(self.norm1(x), "space")
        return x + self.mlp(self.norm2(x))


class MotionFormer(nn.Module):
    """Segments ``(N, 3, 16, 224, 224)`` -> per-step features ``(N, 8, 768)``.

    ``depth`` is the number of divided space-time blocks (12 in the official model).
    """

    def __init__(self, depth: int = 12) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, GRID * GRID + 1, DIM))  # CLS + 14x14 positions
        self.temp_embed = nn.Parameter(torch.zeros(1, STEPS, DIM))
        # The 2-D patch embedding is never applied (the tubelet embedding below replaces it); the
        # official model keeps it, so we keep it too for a strict load of the official weights.
        self.patch_embed = _Patchify(nn.Conv2d(3, DIM, PATCH_PX, stride=PATCH_PX))
        tubelet = (TUBELET_FRAMES, PATCH_PX, PATCH_PX)
        self.patch_embed_3d = _Patchify(nn.Conv3d(3, DIM, tubelet, stride=tubelet))
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock() for _ in range(depth))
        self.norm = nn.LayerNorm(DIM, eps=LAYER_NORM_EPS)
        self.spatial_attn_agg = ClsPoolingLayer(DIM, N_HEAD, MLP_DIM)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``(N, 3, 16, 224, 224)`` into ``(N, 1 + 8*196, 768)`` with position embeddings."""
        n = x.shape[0]
        x = self.patch_embed_3d.proj(x).flatten(2).transpose(1, 2)  # (N, steps*196, D), step-major
        # Separate embeddings: spatial position (shared by all steps) + step (shared by all patches).
        pos = self.pos_embed[:, 1:].unsqueeze(1) + self.temp_embed.unsqueeze(2)  # (1, steps, 196, D)
        x = x + pos.reshape(1, -1, DIM)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)
        return torch.cat((cls, x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, frames, height, width = x.shape
        if (frames, height, width) != (SEGMENT_FRAMES, IMAGE_PX, IMAGE_PX):
            raise ValueError(
                f"MotionFormer expects segments of {SEGMENT_FRAMES}x{IMAGE_PX}x{IMAGE_PX}, "
                f"got {frames}x{height}x{width}"
            )
        x = self.tokens(x)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x[:, 1:])  # the CLS token is not used for the features
        x = x.reshape(n * STEPS, GRID * GRID, DIM)  # each step's 14x14 patches as one sequence
        return self.spatial_attn_agg(x).view(n, STEPS, DIM)
