"""Synchformer (Iashin et al., ICASSP 2024) in plain torch, loadable from the official weights.

A window is 14 overlapping segments of video (16 frames) and audio (0.64 s). MotionFormer turns
each video segment into 8 step features and AST each audio segment into 6 time features
(``visual_features`` / ``audio_features``, 768-d). After ``vproj`` / ``aproj`` and an input
LayerNorm per modality, the global transformer reads

    [OFF, 14*8 visual tokens, MOD, 14*6 audio tokens] + a learned position embedding (198)

through minGPT blocks and a final LayerNorm, and ``off_head`` maps the OFF token to one logit
per offset class of :func:`offset_grid` (21 classes on -2.0..+2.0 s; positive = audio early).

The architecture sizes are read from the state dict keys, so the bare Hugging Face file
``synchformer_state_dict.pth`` needs no config; a config, when given, must agree with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from .ast import AST
from .mingpt import Block
from .motionformer import MotionFormer

FEAT_DIM = 768  # MotionFormer and AST output width
DEFAULT_N_HEAD = 8  # global transformer heads (configs/sync.yaml); not recoverable from weights
DEFAULT_MAX_OFF_SEC = 2.0
DEFAULT_NUM_CLASSES = 21
_MAX_DETAIL_CHARS = 300  # of torch's load_state_dict message, in our one-line error

# Keys that only a Synchformer state dict has (SparseSync's start with vfeat_extractor.base. and
# carry transformer.v_selector.*).
_SIGNATURE_KEYS = (
    "vfeat_extractor.patch_embed_3d.proj.weight",
    "afeat_extractor.ast.embeddings.patch_embeddings.projection.weight",
    "transformer.OFF_tok",
    "transformer.off_head.weight",
)
_DEPTH_PATTERNS = {
    "vis_depth": re.compile(r"^vfeat_extractor\.blocks\.(\d+)\."),
    "aud_depth": re.compile(r"^afeat_extractor\.ast\.encoder\.layer\.(\d+)\."),
    "n_layer": re.compile(r"^transformer\.blocks\.(\d+)\."),
}


@dataclass(frozen=True)
class SynchformerArch:
    """The sizes that vary between Synchformer checkpoints."""

    vis_depth: int = 12  # MotionFormer blocks
    aud_depth: int = 12  # AST encoder layers
    n_layer: int = 3  # global transformer blocks
    n_head: int = DEFAULT_N_HEAD
    n_embd: int = 768
    num_classes: int = DEFAULT_NUM_CLASSES
    n_tokens: int = 198  # 1 + 14*8 + 1 + 14*6


class PositionEmbedding(nn.Module):
    """A learned embedding added to the whole token sequence (``pos_emb_cfg.pos_emb`` in the weights)."""

    def __init__(self, n_tokens: int, n_embd: int) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, n_tokens, n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.pos_emb.shape[1]:
            raise ValueError(
                f"the global transformer was trained on {self.pos_emb.shape[1]} tokens, got {x.shape[1]}"
            )
        return x + self.pos_emb


class GlobalTransformer(nn.Module):
    """``[OFF, visual, MOD, audio]`` -> minGPT blocks -> LayerNorm -> ``off_head`` on OFF."""

    def __init__(self, n_layer: int, n_head: int, n_embd: int, num_classes: int, n_tokens: int) -> None:
        super().__init__()
        self.vis_in_lnorm = nn.LayerNorm(n_embd)
        self.aud_in_lnorm = nn.LayerNorm(n_embd)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, n_embd))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, n_embd))
        self.pos_emb_cfg = PositionEmbedding(n_tokens, n_embd)  # the authors' name, kept for the weights
        self.blocks = nn.Sequential(*(Block(n_embd, n_head) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)
        self.off_head = nn.Linear(n_embd, num_classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``v (B, Nv, D)``, ``a (B, Na, D)`` -> logits ``(B, classes)``."""
        b = v.shape[0]
        x = torch.cat(
            (
                self.OFF_tok.expand(b, -1, -1),
                self.vis_in_lnorm(v),
                self.MOD_tok.expand(b, -1, -1),
                self.aud_in_lnorm(a),
            ),
            dim=1,
        )
        x = self.ln_f(self.blocks(self.pos_emb_cfg(x)))
        return self.off_head(x[:, 0])


class Synchformer(nn.Module):
    """The full model. Build it with :meth:`from_state_dict`; call it on prepared inputs.

    ``forward(vid (B, 14, 16, 3, 224, 224), aud (B, 14, 1, 128, 66)) -> logits (B, classes)``,
    with inputs from :mod:`sparsesync_cli.features.synchformer`.
    """

    def __init__(self, arch: SynchformerArch | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or SynchformerArch()
        self.vfeat_extractor = MotionFormer(arch.vis_depth)
        self.afeat_extractor = AST(arch.aud_depth)
        self.vproj = nn.Linear(FEAT_DIM, arch.n_embd)
        self.aproj = nn.Linear(FEAT_DIM, arch.n_embd)
        self.transformer = GlobalTransformer(
            arch.n_layer, arch.n_head, arch.n_embd, arch.num_classes, arch.n_tokens
        )

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        config: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> Synchformer:
        """Build the model that ``state_dict`` describes, load it strictly, return it in eval mode.

        Sizes come from the keys and shapes; ``config`` (an official ``cfg-<id>.yaml`` as a
        resolved dict) only adds the number of attention heads and must agree with the weights,
        else :class:`CheckpointError`. Half-precision weights are converted to float32; float32
        tensors are used as they are, not copied. ``path`` only names the source in error messages.
        """
        arch = infer_arch(state_dict, path=path)
        if config is not None:
            arch = _apply_config(arch, config, path)
        with torch.device("meta"):  # no memory for weights that are replaced right away
            model = cls(arch)
        tensors = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state_dict.items()}
        try:
            model.load_state_dict(tensors, strict=True, assign=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            detail = " ".join(line.strip() for line in first[1:3]) if len(first) > 1 else first[0]
            if len(detail) > _MAX_DETAIL_CHARS:  # hundreds of key names help nobody
                detail = detail[: _MAX_DETAIL_CHARS - 3] + "..."
            raise CheckpointError(
                f"weights do not fit the Synchformer architecture: {detail}", path
            ) from None
        return model.eval()

    def visual_features(self, vid: torch.Tensor) -> torch.Tensor:
        """``(B, S, 16, 3, 224, 224)`` -> ``(B, S, 8, 768)`` (before ``vproj``)."""
        b, s = vid.shape[:2]
        x = vid.flatten(0, 1).transpose(1, 2)  # (B*S, 3, 16, 224, 224)
        return self.vfeat_extractor(x).view(b, s, -1, FEAT_DIM)

    def audio_features(self, aud: torch.Tensor) -> torch.Tensor:
        """``(B, S, 1, 128, 66)`` -> ``(B, S, 6, 768)`` (before ``aproj``)."""
        b, s = aud.shape[:2]
        return self.afeat_extractor(aud.flatten(0, 2)).view(b, s, -1, FEAT_DIM)

    def offset_logits(self, vfeat: torch.Tensor, afeat: torch.Tensor) -> torch.Tensor:
        """Segment features ``(B, S, 8, 768)``, ``(B, S, 6, 768)`` -> logits ``(B, classes)``."""
        v = self.vproj(vfeat).flatten(1, 2)
        a = self.aproj(afeat).flatten(1, 2)
        return self.transformer(v, a)

    def forward(self, vid: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        return self.offset_logits(self.visual_features(vid), self.audio_features(aud))


def is_synchformer_state_dict(keys: Iterable[str]) -> bool:
    """True when the state dict keys are those of a Synchformer (not SparseSync) model."""
    keys = set(keys)
    return all(k in keys for k in _SIGNATURE_KEYS)


def infer_arch(state_dict: Mapping[str, torch.Tensor], path: str | None = None) -> SynchformerArch:
    """Read depths and sizes from the keys and shapes of a Synchformer state dict."""
    if not is_synchformer_state_dict(state_dict.keys()):
        missing = next(k for k in _SIGNATURE_KEYS if k not in state_dict)
        raise CheckpointError(f"not a Synchformer state dict (no key {missing})", path)
    depths = {}
    for name, pattern in _DEPTH_PATTERNS.items():
        found = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
        if not found or found != set(range(len(found))):
            raise CheckpointError(f"not a Synchformer state dict: {name} indices {sorted(found)}", path)
        depths[name] = len(found)
    off_tok = state_dict["transformer.OFF_tok"]
    pos = state_dict.get("transformer.pos_emb_cfg.pos_emb")
    if pos is None or pos.dim() != 3 or off_tok.dim() != 3:
        raise CheckpointError("not a Synchformer state dict: no 3-d transformer.pos_emb_cfg.pos_emb", path)
    return SynchformerArch(
        **depths,
        n_embd=int(off_tok.shape[-1]),
        num_classes=int(state_dict["transformer.off_head.weight"].shape[0]),
        n_tokens=int(pos.shape[1]),
    )


def _cfg(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _apply_config(arch: SynchformerArch, config: Mapping[str, Any], path: str | None) -> SynchformerArch:
    """Check ``config`` against what the weights say; take the head count from it."""
    target = _cfg(config, "model.target")
    if target is not None and not str(target).endswith("Synchformer"):
        raise CheckpointError(f"config does not match the weights: the config describes {target}", path)
    tp = "model.params.transformer.params."
    pos_shape = _cfg(config, tp + "pos_emb_cfg.params.block_shape")
    expected = {
        "global transformer layers (" + tp + "n_layer)": (_cfg(config, tp + "n_layer"), arch.n_layer),
        "embedding width (" + tp + "n_embd)": (_cfg(config, tp + "n_embd"), arch.n_embd),
        "offset classes (data.num_off_cls)": (_cfg(config, "data.num_off_cls"), arch.num_classes),
        "token count (pos_emb block_shape)": (
            pos_shape[0] if isinstance(pos_shape, list) and len(pos_shape) == 1 else pos_shape,
            arch.n_tokens,
        ),
    }
    for what, (in_cfg, in_weights) in expected.items():
        if in_cfg is not None and in_cfg != in_weights:
            raise CheckpointError(
                f"config does not match the weights: {what} is {in_cfg} in the config, "
                f"{in_weights} in the weights",
                path,
            )
    n_head = _cfg(config, tp + "n_head")
    if n_head is None:
        return arch
    if not isinstance(n_head, int) or n_head <= 0 or arch.n_embd % n_head:
        raise CheckpointError(
            f"config does not match the weights: n_head {n_head} does not divide the width {arch.n_embd}",
            path,
        )
    return replace(arch, n_head=n_head)


def offset_grid(config: Mapping[str, Any] | None = None, num_classes: int | None = None) -> torch.Tensor:
    """The offset in seconds of each class: ``linspace(-max_off, max_off, classes)`` as float32.

    From ``data.max_off_sec`` / ``data.num_off_cls`` when the config has them, else +-2.0 s;
    ``num_classes`` (e.g. from the weights) is used when the config does not say.
    Computed in float64 and rounded, as the reference does with numpy.
    """
    max_off = _cfg(config, "data.max_off_sec") if config is not None else None
    classes = _cfg(config, "data.num_off_cls") if config is not None else None
    max_off = float(DEFAULT_MAX_OFF_SEC if max_off is None else max_off)
    classes = int(classes or num_classes or DEFAULT_NUM_CLASSES)
    return torch.from_numpy(np.linspace(-max_off, max_off, classes)).float()
