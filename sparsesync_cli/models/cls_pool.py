"""The CLS-token pooling layer Synchformer uses to squeeze space (video) and frequency (audio).

The authors subclass ``torch.nn.TransformerEncoderLayer`` (``d_model=768, nhead=12,
dim_feedforward=3072, activation=GELU (exact), layer_norm_eps=1e-6, norm_first=True,
batch_first=True``), prepend a learned CLS token to each sequence and keep only the CLS output.
We write the layer out so that the parameter names stay those of the official state dict
(``cls_token``, ``self_attn.in_proj_weight`` / ``in_proj_bias`` / ``out_proj``, ``linear1``,
``linear2``, ``norm1``, ``norm2``) while computing only what the CLS output depends on.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LAYER_NORM_EPS = 1e-6  # the reference passes layer_norm_eps=1e-6 (torch's default is 1e-5)


class PackedSelfAttention(nn.Module):
    """Multi-head attention with one packed input projection, named as in ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        if dim % n_head:
            raise ValueError(f"dim {dim} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Attend ``queries`` (N, Q, D) to the sequence ``x`` (N, L, D); both already normalised."""
        dim = x.shape[-1]
        w_q, w_kv = self.in_proj_weight[:dim], self.in_proj_weight[dim:]
        b_q, b_kv = self.in_proj_bias[:dim], self.in_proj_bias[dim:]
        q = F.linear(queries, w_q, b_q)
        k, v = F.linear(x, w_kv, b_kv).chunk(2, dim=-1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            n, length, _ = t.shape
            return t.view(n, length, self.n_head, dim // self.n_head).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        n, _, n_q, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(n, n_q, dim))


class ClsPoolingLayer(nn.Module):
    """Pre-norm transformer encoder layer over ``[CLS, x_1..x_L]`` that returns the CLS output.

    ``forward(x (N, L, D)) -> (N, D)``. The reference runs the full encoder layer and then keeps
    row 0; since every other row is thrown away, only the CLS query and the CLS row of the MLP
    are computed here (the keys and values still come from all tokens): the same numbers, about
    L times less work in the attention output and the MLP.
    """

    def __init__(self, dim: int = 768, n_head: int = 12, mlp_dim: int = 3072) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = PackedSelfAttention(dim, n_head)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        seq = torch.cat((cls, x), dim=1)
        normed = self.norm1(seq)
        # norm_first=True: x + SA(norm1(x)), then x + FF(norm2(x)); dropout is inactive in eval.
        h = cls + self.self_attn(normed[:, :1], normed)
        h = h + self.linear2(F.gelu(self.linear1(self.norm2(h))))
        return h[:, 0]
