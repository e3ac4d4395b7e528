"""The one table of model families: what differs between SparseSync and Synchformer, in one place.

Each :class:`Family` says how to recognise its checkpoints (the config's ``model.target`` or, for
a bare state dict, its weight names), how to build the network and its class grid from one, which
feature module turns decoded windows into its inputs, and which part of a window it reads
(:class:`~sparsesync_cli.geometry.WindowGeometry`). Adding a family is one entry here plus
its ``models/`` and ``features/`` modules; the registry, the results and ``load_model`` read this
table. The model and feature modules (torch) are imported only when a family is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from .errors import CheckpointError
from .geometry import WindowGeometry

if TYPE_CHECKING:
    import torch

    from .checkpoints.loading import Checkpoint

SPARSESYNC = "sparsesync"
SYNCHFORMER = "synchformer"

Built = tuple["torch.nn.Module", tuple[float, ...]]

# SparseSync uses the whole 5 s window; Synchformer cuts 14 segments of 16 frames (stride 8) out
# of its middle: frames [2, 122) and samples [1280, 78080), 4.8 s.
SPARSESYNC_GEOMETRY = WindowGeometry()
SYNCHFORMER_GEOMETRY = WindowGeometry(used_frames=(2, 122), used_samples=(1280, 78080))


@dataclass(frozen=True)
class Family:
    """One model family: its name, window geometry, features, builder and checkpoint recogniser."""

    name: str
    title: str
    geometry: WindowGeometry
    config_target: str  # the last part of the class name a config's ``model.target`` names
    features_module: str  # turns decoded windows into the network's inputs
    build: Callable[[Checkpoint], Built]  # the network (eval mode not set) and its class grid
    owns_weights: Callable[[Iterable[str]], bool]  # recognises a bare state dict by its keys

    def features(self) -> ModuleType:
        """The module with ``video_input(frames)`` and ``audio_input(samples)`` for this family."""
        return importlib.import_module(self.features_module, __package__)


def _floats(grid: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(x) for x in grid)


def _build_sparsesync(checkpoint: Checkpoint) -> Built:
    from .models.sparsesync import build_sparsesync, offset_grid

    if checkpoint.config is None:
        raise CheckpointError(
            "a SparseSync checkpoint needs its config (no 'args' in it): pass --config cfg-<id>.yaml",
            checkpoint.path,
        )
    return build_sparsesync(checkpoint), _floats(offset_grid(checkpoint.config))


def _build_synchformer(checkpoint: Checkpoint) -> Built:
    from .models.synchformer import Synchformer, offset_grid

    net = Synchformer.from_state_dict(checkpoint.state_dict, checkpoint.config, path=checkpoint.path)
    return net, _floats(offset_grid(checkpoint.config, net.arch.num_classes))


def _sparsesync_weights(keys: Iterable[str]) -> bool:
    return any(k.startswith("transformer.v_selector.") for k in keys)


def _synchformer_weights(keys: Iterable[str]) -> bool:
    from .models.synchformer import is_synchformer_state_dict

    return is_synchformer_state_dict(keys)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name=SPARSESYNC,
            title="SparseSync",
            geometry=SPARSESYNC_GEOMETRY,
            config_target="AVSyncModel",
            features_module=".features.sparsesync",
            build=_build_sparsesync,
            owns_weights=_sparsesync_weights,
        ),
        Family(
            name=SYNCHFORMER,
            title="Synchformer",
            geometry=SYNCHFORMER_GEOMETRY,
            config_target="Synchformer",
            features_module=".features.synchformer",
            build=_build_synchformer,
            owns_weights=_synchformer_weights,
        ),
    )
}
NAMES: tuple[str, ...] = tuple(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"model family must be one of {', '.join(NAMES)}, got {name!r}") from None


def family_of(checkpoint: Checkpoint) -> Family:
    """The family of a checkpoint: from its config's model target, else from its weight names."""
    from .checkpoints.config import get

    target = str(get(checkpoint.config, "model.target", "")) if checkpoint.config else ""
    for family in FAMILIES.values():
        if target.endswith(family.config_target):
            return family
    keys = list(checkpoint.state_dict.keys())
    for family in FAMILIES.values():
        if family.owns_weights(keys):
            return family
    titles = " nor a ".join(f.title for f in FAMILIES.values())
    raise CheckpointError(
        f"neither a {titles} checkpoint (unknown config target and weight names)", checkpoint.path
    )
