import pytest

from sparsesync_cli.checkpoints.config import get, load_config, resolve
from sparsesync_cli.errors import ConfigError


def test_official_sparsesync_config_resolves(shared_dir):
    cfg = load_config(shared_dir / "fixtures/sparsesync/cfg-tiny_sparsesync.yaml")
    tr = get(cfg, "model.params.transformer.params")
    assert tr["n_layer"] == 2 and tr["n_embd"] == 512 and tr["num_offset_cls"] == 21
    # whole-node interpolations become the node itself (a list, a mapping)
    assert tr["vis_pos_emb_module"]["params"]["block_shape"] == [16, 7, 7]
    assert tr["v_selector_cfg"]["params"]["pos_emb_cfg"]["params"]["max_pos"] == 16
    assert get(cfg, "model.params.v_bridge_cfg.params.out_channels") == 512


def test_partial_string_interpolation_and_errors():
    assert resolve({"a": 3, "b": "x${a}y"})["b"] == "x3y"
    with pytest.raises(ConfigError, match="missing key"):
        resolve({"a": "${nope.x}"})
    with pytest.raises(ConfigError, match="does not terminate"):
        resolve({"a": "${b}", "b": "${a}"})


def test_bad_yaml_names_the_file(tmp_path):
    p = tmp_path / "cfg-bad.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cfg-bad\.yaml: not a valid YAML config"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
