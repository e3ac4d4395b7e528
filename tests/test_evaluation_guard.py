"""A named protocol and a model of another class count are refused before the model loads."""

from __future__ import annotations

import pytest

from sparsesync_cli.checkpoints.loading import load_checkpoint
from sparsesync_cli.errors import UsageError
from sparsesync_cli.evaluation.guard import check_protocol_model, model_classes
from sparsesync_cli.evaluation.named import NAMED_PROTOCOLS


def test_each_named_protocol_knows_its_class_count_and_its_models():
    classes = {name: p.classes for name, p in NAMED_PROTOCOLS.items()}
    assert classes == {
        "lrs3": 21,
        "lrs3-3cls": 3,
        "vggsound-sparse": 21,
        "vggsound-sparse-3cls": 3,
        "vggsound": 21,
    }
    for p in NAMED_PROTOCOLS.values():  # every model published for it has its class count
        assert all(model_classes(m) == p.classes for m in p.published), p.name


def test_the_class_count_comes_from_the_registry_or_the_checkpoint_without_its_weights(shared_dir):
    assert model_classes("sparsesync-lrs3-3cls") == 3 and model_classes() == 21  # default: 21
    fx = shared_dir / "fixtures/sparsesync"
    assert model_classes(checkpoint=fx / "tiny_sparsesync.pt") == 21  # its own args
    assert model_classes(checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml") == 21
    peek = load_checkpoint(fx / "tiny_sparsesync.pt", weights=False)  # what model_classes reads
    assert {t.device.type for t in peek.state_dict.values()} == {"meta"}  # shapes, no values read
    with pytest.raises(UsageError, match="unknown model"):
        model_classes("no-such-model")


def test_a_model_of_another_class_count_is_refused_in_one_line():
    check_protocol_model(NAMED_PROTOCOLS["lrs3"], 21, "sparsesync-audioset")  # fine
    with pytest.raises(UsageError) as e:
        check_protocol_model(NAMED_PROTOCOLS["lrs3-3cls"], 21, "sparsesync-audioset")
    msg = str(e.value)
    assert "\n" not in msg and "lrs3-3cls" in msg and "sparsesync-lrs3-3cls" in msg and "21 classes" in msg
