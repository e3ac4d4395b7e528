"""The authors' SparseSync, built from a checkout of their repository, for benchmarks only.

``load_reference(DIR, state_dict)`` imports the model classes from ``DIR`` (github
v-iashin/SparseSync, the user's own checkout: nothing of it is copied here), builds the model
their ``configs/sparse_sync.yaml`` describes without its pretrained-backbone paths, and loads
``state_dict`` (ours: the key names are theirs) strictly, so both models run the same weights.

Their code needs omegaconf, einops, requests and torchvision (for its ResNet class only); these
are bench-only packages, not avsync's. torchvision's PyPI wheels are CUDA builds whose compiled
ops do not load beside a CPU-only torch; the ResNet module itself is plain Python, so when
``import torchvision`` fails this loads ``torchvision.models.resnet`` without the package's
``__init__`` (and says so in ``REFERENCE_NOTES``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch

REFERENCE_NOTES: list[str] = []


def _torchvision_resnet_importable() -> None:
    """Make ``from torchvision.models.resnet import ResNet`` work even when torchvision's
    compiled extension cannot load (a CUDA wheel beside CPU torch)."""
    try:
        import torchvision  # noqa: F401

        return
    except Exception as e:  # any failure of the package's __init__
        reason = f"{type(e).__name__}: {e}"
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "--reference needs torchvision installed (its ResNet class): pip install torchvision"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, where in (("torchvision", root), ("torchvision.models", root / "models")):
        shell = types.ModuleType(name)
        shell.__path__ = [str(where)]  # a package without its __init__: submodules import lazily
        sys.modules[name] = shell
    REFERENCE_NOTES.append(
        f"torchvision's package import failed ({reason[:120]}); its resnet module was loaded alone"
    )


def load_reference(repo: Path, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The authors' ``AVSyncModel`` (21 classes, official config) with ``state_dict`` loaded strictly."""
    repo = repo.resolve()
    if not (repo / "model/sync_model.py").is_file() or not (repo / "configs/sparse_sync.yaml").is_file():
        raise SystemExit(f"{repo}: not a checkout of v-iashin/SparseSync (no model/sync_model.py)")
    _torchvision_resnet_importable()
    from omegaconf import OmegaConf

    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    utils = importlib.import_module("utils.utils")
    cfg = OmegaConf.load(repo / "configs/sparse_sync.yaml")
    # no pretrained backbones: the weights come from state_dict
    cfg.model.params.afeat_extractor.params.ckpt_path = None
    cfg.model.params.vfeat_extractor.params.ckpt_path = None
    model = utils.instantiate_from_config(cfg.model)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def reference_stages(model: torch.nn.Module, vid: torch.Tensor, aud: torch.Tensor):
    """The same stages as ``model_speed.sparsesync_stages``: S3D, then everything else."""
    box: dict[str, torch.Tensor] = {}

    def s3d() -> None:
        box["v"] = model.vfeat_extractor(vid)

    def rest() -> None:
        v = model.v_bridge(box["v"].permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
        box["logits"] = model.transformer(v, model.a_bridge(model.afeat_extractor(aud)))

    return [("s3d", s3d), ("audio_bridge_head", rest)], lambda: box["logits"]
