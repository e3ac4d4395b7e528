"""SparseSync (Iashin et al., BMVC 2022): audio-visual offset classification over a 5 s window.

The data flow of one window::

    frames (B,125,3,224,224) -- S3D --> (B,16,1024,7,7) -- 1x1x1 conv + GELU --> (B,16,512,7,7)
    spectrogram (B,1,257,626) -- ResNet-18 --> (B,512,9,20)
    both: LayerNorm, learned (t,h,w) / (f,t) position embeddings, then a selector transformer
    each (16 learned queries: self-attention, cross-attention to the features, MLP)
    [OFF, 16 visual, MOD, 16 audio] -> LayerNorm'd inputs, minGPT blocks, LayerNorm
    OFF token -> bias-free linear head -> num_offset_cls logits (class i = grid[i] s audio lead)

Module and parameter names follow the authors' code so official checkpoints load strictly;
every size comes from the checkpoint's config. Dropout is omitted: inference only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoints.config import get
from ..checkpoints.loading import Checkpoint
from ..errors import CheckpointError, ConfigError
from .mingpt import Block, SelfAttention, mlp
from .resnet_audio import OUT_CHANNELS as AUDIO_CHANNELS
from .resnet_audio import ResNet18Audio
from .s3d import OUT_CHANNELS as VISUAL_CHANNELS
from .s3d import S3D

# The reference class names this implementation reproduces, by config entry.
_EXPECTED_TARGETS = {
    "model.params.vfeat_extractor.target": "S3DVisualFeatures",
    "model.params.afeat_extractor.target": "ResNet18AudioFeatures",
    "model.params.a_bridge_cfg.target": "DoNothingBridge",
    "model.params.v_bridge_cfg.target": "ConvBridgeVisual",
    "model.params.transformer.target": "SparseSync",
    "model.params.transformer.params.pre_norm_cfg.target": "LayerNorm",
    "model.params.transformer.params.vis_pos_emb_module.target": "PositionEmbeddingLearnedVisual",
    "model.params.transformer.params.aud_pos_emb_module.target": "PositionEmbeddingLearnedAudio",
    "model.params.transformer.params.a_selector_cfg.target": "FeatureSelectorTransformer",
    "model.params.transformer.params.v_selector_cfg.target": "FeatureSelectorTransformer",
    "model.params.transformer.params.global_transformer_cfg.target": "GlobalTransformer",
}


@dataclass(frozen=True)
class Arch:
    """The sizes of a SparseSync model, read from its config."""

    n_embd: int
    n_head: int
    num_offset_cls: int
    visual_block_shape: tuple[int, int, int]  # (t, h, w) of the S3D feature map
    audio_block_shape: tuple[int, int]  # (f, t) of the ResNet feature map
    v_selectors: int
    a_selectors: int
    v_selector_layers: int
    a_selector_layers: int
    v_selector_pos_emb: bool
    a_selector_pos_emb: bool
    global_layers: int
    bridge: dict[str, Any]  # Conv3d arguments of the visual bridge
    max_off_sec: float


def official_arch(num_offset_cls: int = 21) -> Arch:
    """The architecture of the official checkpoints (21 classes on +-2 s, or 3 on +-1 s).

    For building the full-size model without a config (benchmarks); loading a checkpoint always
    reads the sizes from its own config.
    """
    return Arch(
        n_embd=512,
        n_head=8,
        num_offset_cls=num_offset_cls,
        visual_block_shape=(16, 7, 7),
        audio_block_shape=(9, 20),
        v_selectors=16,
        a_selectors=16,
        v_selector_layers=3,
        a_selector_layers=3,
        v_selector_pos_emb=True,
        a_selector_pos_emb=True,
        global_layers=3,
        bridge={"kernel_size": [1, 1, 1], "stride": [1, 1, 1], "padding": [0, 0, 0], "bias": True},
        max_off_sec=2.0 if num_offset_cls == 21 else 1.0,
    )


def read_arch(cfg: dict[str, Any]) -> Arch:
    """Check that ``cfg`` describes the SparseSync architecture and read its sizes (ConfigError if not)."""
    for key, cls in _EXPECTED_TARGETS.items():
        target = get(cfg, key, None)
        if not isinstance(target, str) or target.rsplit(".", 1)[-1] != cls:
            raise ConfigError(f"unsupported architecture: '{key}' is {target!r}, expected a ...{cls}")
    tp = get(cfg, "model.params.transformer.params")
    sel = {m: get(cfg, f"model.params.transformer.params.{m}_selector_cfg.params") for m in "av"}
    glob = get(cfg, "model.params.transformer.params.global_transformer_cfg.params")
    bridge = dict(get(cfg, "model.params.v_bridge_cfg.params"))
    try:
        n_embd, n_head = int(tp["n_embd"]), int(tp["n_head"])
        for part in (sel["a"], sel["v"], glob):
            if int(part["n_embd"]) != n_embd or int(part["n_head"]) != n_head:
                raise ConfigError("selectors and global transformer must share n_embd and n_head")
        if int(bridge["in_channels"]) != VISUAL_CHANNELS or int(bridge["out_channels"]) != n_embd:
            raise ConfigError(f"the visual bridge must map {VISUAL_CHANNELS} to n_embd={n_embd} channels")
        if n_embd != AUDIO_CHANNELS:
            raise ConfigError(
                f"n_embd must equal the audio ResNet's {AUDIO_CHANNELS} channels (no audio bridge)"
            )

        if len(tp["visual_block_shape"]) != 3 or len(tp["audio_block_shape"]) != 2:
            raise ConfigError("visual_block_shape must be [t, h, w] and audio_block_shape [f, t]")

        def has_pos_emb(params: dict[str, Any]) -> bool:
            target = (params.get("pos_emb_cfg") or {}).get("target", "")
            return str(target).endswith("PositionEmbeddingSelectors")

        return Arch(
            n_embd=n_embd,
            n_head=n_head,
            num_offset_cls=int(tp["num_offset_cls"]),
            visual_block_shape=tuple(int(v) for v in tp["visual_block_shape"]),  # type: ignore[arg-type]
            audio_block_shape=tuple(int(v) for v in tp["audio_block_shape"]),  # type: ignore[arg-type]
            v_selectors=int(sel["v"]["num_selectors"]),
            a_selectors=int(sel["a"]["num_selectors"]),
            v_selector_layers=int(sel["v"]["n_layer"]),
            a_selector_layers=int(sel["a"]["n_layer"]),
            v_selector_pos_emb=has_pos_emb(sel["v"]),
            a_selector_pos_emb=has_pos_emb(sel["a"]),
            global_layers=int(glob["n_layer"]),
            bridge={k: bridge[k] for k in ("kernel_size", "stride", "padding", "bias") if k in bridge},
            max_off_sec=float(get(cfg, "data.max_off_sec")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"malformed SparseSync config ({type(e).__name__}: {e})") from None


def offset_grid(cfg: dict[str, Any]) -> list[float]:
    """Class offsets in seconds: ``linspace(-max_off_sec, max_off_sec, num_offset_cls)`` in float32.

    Rounded to float32 like the reference's grid, so 0.2 s reads 0.20000000298023224.
    """
    max_off = float(get(cfg, "data.max_off_sec"))
    n = int(get(cfg, "model.params.transformer.params.num_offset_cls"))
    return [float(v) for v in np.linspace(-max_off, max_off, n).astype(np.float32)]


class PositionEmbeddingVisual(nn.Module):
    """Learned embeddings of t, h and w, concatenated as [t | w | h] (t takes the remainder)."""

    def __init__(self, block_shape: tuple[int, int, int], n_embd: int) -> None:
        super().__init__()
        t, h, w = block_shape
        third = n_embd // 3
        self.time_embed = nn.Embedding(t, third + n_embd % 3)
        self.height_embed = nn.Embedding(h, third)
        self.width_embed = nn.Embedding(w, third)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, t, h, w, d) -> x + pos."""
        _, t, h, w, _ = x.shape
        te = self.time_embed.weight[:t].view(t, 1, 1, -1).expand(t, h, w, -1)
        we = self.width_embed.weight[:w].view(1, 1, w, -1).expand(t, h, w, -1)
        he = self.height_embed.weight[:h].view(1, h, 1, -1).expand(t, h, w, -1)
        return x + torch.cat([te, we, he], dim=-1)


class PositionEmbeddingAudio(nn.Module):
    """Learned embeddings of frequency and time, concatenated as [f | t] (t takes the remainder)."""

    def __init__(self, block_shape: tuple[int, int], n_embd: int) -> None:
        super().__init__()
        f, t = block_shape
        self.freq_embed = nn.Embedding(f, n_embd // 2)
        self.time_embed = nn.Embedding(t, n_embd // 2 + n_embd % 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, f, t, d) -> x + pos."""
        _, f, t, _ = x.shape
        fe = self.freq_embed.weight[:f].view(f, 1, -1).expand(f, t, -1)
        te = self.time_embed.weight[:t].view(1, t, -1).expand(f, t, -1)
        return x + torch.cat([fe, te], dim=-1)


class SelectorPositionEmbedding(nn.Module):
    """A learned embedding per selector query; key ``time_embed`` as in the reference."""

    def __init__(self, n: int, n_embd: int) -> None:
        super().__init__()
        self.time_embed = nn.Embedding(n, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.time_embed.weight[: x.shape[1]]


class CrossBlock(nn.Module):
    """Decoder layer: self-attention among queries, cross-attention to the context, MLP (pre-norm).

    The context enters the cross-attention as it is (not normalised), as in the reference.
    """

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ln3 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head)
        self.xattn = SelfAttention(n_embd, n_head)
        self.mlp = mlp(n_embd)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.xattn(self.ln2(x), context)
        return x + self.mlp(self.ln3(x))


class FeatureSelector(nn.Module):
    """Summarises a feature map into ``num_selectors`` tokens with learned queries."""

    def __init__(self, num_selectors: int, n_layer: int, n_head: int, n_embd: int, pos_emb: bool) -> None:
        super().__init__()
        self.selectors = nn.Parameter(torch.zeros(num_selectors, n_embd))
        self.selectors_pos_emb = SelectorPositionEmbedding(num_selectors, n_embd) if pos_emb else None
        self.blocks = nn.ModuleList(CrossBlock(n_embd, n_head) for _ in range(n_layer))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context: (B, ..., D) -> (B, num_selectors, D)."""
        b, d = context.shape[0], context.shape[-1]
        context = context.reshape(b, -1, d)
        x = self.selectors.unsqueeze(0).expand(b, -1, -1)
        if self.selectors_pos_emb is not None:
            x = self.selectors_pos_emb(x)
        for block in self.blocks:
            x = block(x, context)
        return x


class GlobalTransformer(nn.Module):
    """minGPT encoder over [OFF, visual selectors, MOD, audio selectors]."""

    def __init__(self, n_layer: int, n_head: int, n_embd: int) -> None:
        super().__init__()
        self.vis_in_lnorm = nn.LayerNorm(n_embd)
        self.aud_in_lnorm = nn.LayerNorm(n_embd)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, n_embd))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, n_embd))
        self.blocks = nn.Sequential(*(Block(n_embd, n_head) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        b = vis.shape[0]
        off, mod = self.OFF_tok.expand(b, -1, -1), self.MOD_tok.expand(b, -1, -1)
        x = torch.cat([off, self.vis_in_lnorm(vis), mod, self.aud_in_lnorm(aud)], dim=1)
        return self.ln_f(self.blocks(x))


class SyncTransformer(nn.Module):
    """Everything after the backbones (the reference's ``feature_selector.SparseSync``)."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        d = arch.n_embd
        self.pre_lnorm_vis = nn.LayerNorm(d)
        self.pre_lnorm_aud = nn.LayerNorm(d)
        self.vis_pos_emb = PositionEmbeddingVisual(arch.visual_block_shape, d)
        self.aud_pos_emb = PositionEmbeddingAudio(arch.audio_block_shape, d)
        self.v_selector = FeatureSelector(
            arch.v_selectors, arch.v_selector_layers, arch.n_head, d, arch.v_selector_pos_emb
        )
        self.a_selector = FeatureSelector(
            arch.a_selectors, arch.a_selector_layers, arch.n_head, d, arch.a_selector_pos_emb
        )
        self.global_transformer = GlobalTransformer(arch.global_layers, arch.n_head, d)
        self.off_head = nn.Linear(d, arch.num_offset_cls, bias=False)

    def forward(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """vis (B, t, D, h, w), aud (B, D, f, t) -> logits (B, num_offset_cls)."""
        vis = self.vis_pos_emb(self.pre_lnorm_vis(vis.permute(0, 1, 3, 4, 2)))
        aud = self.aud_pos_emb(self.pre_lnorm_aud(aud.permute(0, 2, 3, 1)))
        x = self.global_transformer(self.v_selector(vis), self.a_selector(aud))
        return self.off_head(x[:, 0])


class VisualBridge(nn.Module):
    """Conv3d (1x1x1 in the official config) then GELU; key ``bridge.0``."""

    def __init__(self, c_in: int, c_out: int, conv_args: dict[str, Any]) -> None:
        super().__init__()
        args: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in conv_args.items()}
        self.bridge = nn.Sequential(nn.Conv3d(c_in, c_out, **args), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, t, C, h, w) -> (B, t', C', h', w')."""
        return self.bridge(x.transpose(1, 2)).transpose(1, 2)


class SparseSync(nn.Module):
    """The whole model: ``forward(vid, aud) -> logits``; each stage is a method for testing."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        self.vfeat_extractor = S3D()
        self.afeat_extractor = ResNet18Audio()
        self.v_bridge = VisualBridge(VISUAL_CHANNELS, arch.n_embd, arch.bridge)
        self.transformer = SyncTransformer(arch)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> SparseSync:
        """A model with the sizes of ``cfg`` (an official config as a dict), in eval mode."""
        return cls(read_arch(cfg)).eval()

    def visual_features(self, vid: torch.Tensor) -> torch.Tensor:
        """Normalised frames (B, T, 3, H, W) -> S3D features (B, t, 1024, h, w)."""
        return self.vfeat_extractor(vid.transpose(1, 2)).transpose(1, 2)

    def visual_bridge(self, vfeat: torch.Tensor) -> torch.Tensor:
        """S3D features (B, t, 1024, h, w) -> (B, t, n_embd, h, w)."""
        return self.v_bridge(vfeat)

    def audio_features(self, aud: torch.Tensor) -> torch.Tensor:
        """Normalised log-spectrogram (B, 1, F, T) -> ResNet features (B, 512, f, t)."""
        return self.afeat_extractor(aud)

    def head(self, vis: torch.Tensor, afeat: torch.Tensor) -> torch.Tensor:
        """Bridged visual (B, t, D, h, w) and audio features (B, D, f, t) -> logits (B, classes)."""
        return self.transformer(vis, afeat)

    def forward(self, vid: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """vid (B, 125, 3, 224, 224) normalised frames, aud (B, 1, 257, 626) -> logits (B, classes)."""
        return self.head(self.visual_bridge(self.visual_features(vid)), self.audio_features(aud))


def _shape(t: torch.Tensor | None) -> str:
    return "absent" if t is None else "[" + ",".join(str(s) for s in t.shape) + "]"


def build_sparsesync(checkpoint: Checkpoint) -> SparseSync:
    """Build the model its config describes and load its weights strictly (fp16 or fp32 -> fp32).

    Raises CheckpointError (one line) when the checkpoint has no config, or when the config and
    the weights disagree (missing, extra or differently shaped tensors).
    """
    if checkpoint.config is None:
        raise CheckpointError("the checkpoint carries no config: pass its cfg-<id>.yaml", checkpoint.path)
    try:
        model = SparseSync.from_config(checkpoint.config)
    except ConfigError as e:
        raise ConfigError(e.cause, checkpoint.path) from None
    expected = model.state_dict()
    given = checkpoint.state_dict
    # Shape mismatches say most about what is wrong, so they come first; then keys the config
    # wants but the weights lack, then keys the config does not know.
    reshaped = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    problems = [
        f"{k}: weights {_shape(given.get(k))} vs config {_shape(expected.get(k))}"
        for k in reshaped + missing + extra
    ]
    if problems:
        more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
        raise CheckpointError(
            f"config does not match the weights (e.g. {problems[0]}{more})", checkpoint.path
        )
    model.load_state_dict(given, strict=True)
    return model.eval()
