"""The minGPT transformer block that SparseSync and Synchformer share.

Parameter names (``ln1``, ``ln2``, ``attn.key/query/value/proj``, ``mlp.0``, ``mlp.2``) follow
the authors' code so the official state dicts load strictly. Attention goes through
``F.scaled_dot_product_attention``: the same maths as the explicit softmax(QK^T/sqrt(d))V of the
reference, but fused and faster. Dropout layers of the reference are omitted: inference only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    """Multi-head attention with separate key/query/value projections.

    ``forward(x)`` attends x to itself; ``forward(x, context)`` attends the queries from ``x``
    to keys and values from ``context`` (the selectors' cross-attention).
    """

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = self._heads(self.query(x))
        k = self._heads(self.key(context))
        v = self._heads(self.value(context))
        y = F.scaled_dot_product_attention(q, k, v)
        b, t, c = x.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


def mlp(n_embd: int) -> nn.Sequential:
    """Linear(4x) -> GELU -> Linear; indices 0 and 2 match the reference's ``mlp.0`` / ``mlp.2``."""
    return nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head)
        self.mlp = mlp(n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))
