"""Which model a named protocol is for: its class count, checked before a model is loaded.

A named protocol's offsets are on one class grid (21 classes over +-2 s, or 3 over +-1 s); a
model with another grid would be scored against targets it cannot name, and its number printed
beside a published one that means something else. :func:`model_classes` finds a model's class
count without loading its weights (the registry entry, or the checkpoint's config and weight
shapes read from the pickle alone), and :func:`check_protocol_model` refuses the pair in one line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .named import NamedProtocol


def model_classes(
    name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
) -> int:
    """The number of offset classes of a model, as :func:`~sparsesync_cli.sync_model.load_model`
    would build it from the same arguments, without loading its weights.

    A registry name (None: the default model) is answered by the registry; a checkpoint file by
    its config (``config`` or its own ``args``) or, for a bare Synchformer state dict, by the
    shape of its offset head, read from the pickle without the tensors' data. Raises the same
    one-line errors as loading for an unknown name or an unreadable file.
    """
    from ..families import SPARSESYNC, family_of

    if checkpoint is None:
        from ..checkpoints.registry import default_model_name, get_entry

        return get_entry(name or default_model_name()).classes
    from ..checkpoints.loading import load_checkpoint

    ckpt = load_checkpoint(checkpoint, config, weights=False)
    family = family_of(ckpt)
    if family.name == SPARSESYNC:
        from ..errors import CheckpointError
        from ..models.sparsesync import offset_grid

        if ckpt.config is None:
            raise CheckpointError(
                "a SparseSync checkpoint needs its config (no 'args' in it): pass --config cfg-<id>.yaml",
                checkpoint,
            )
        return len(offset_grid(ckpt.config))
    from ..models.synchformer import infer_arch
    from ..models.synchformer import offset_grid as synchformer_grid

    return len(synchformer_grid(ckpt.config, infer_arch(ckpt.state_dict, ckpt.path).num_classes))


def check_protocol_model(protocol: NamedProtocol, classes: int, model_label: str) -> None:
    """Refuse (:class:`UsageError`, one line) a model whose class count is not the named
    ``protocol``'s (a :class:`~.named.NamedProtocol`), naming the models it is for."""
    if classes == protocol.classes:
        return
    meant = ", ".join(protocol.published) or f"a {protocol.classes}-class model"
    raise UsageError(
        f"protocol {protocol.name} is for {protocol.classes}-class models ({meant}); "
        f"{model_label} has {classes} classes (choose one with --model)"
    )
