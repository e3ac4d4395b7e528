"""The checkpoint registry: the official data, merging a team's registry, and its validation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparsesync_cli.checkpoints.registry import (
    default_model_name,
    get_entry,
    load_registry,
    official_registry_path,
    parse_registry_file,
)
from sparsesync_cli.errors import ConfigError, UsageError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
A3S = "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/sync/sync_models/"
# The six SparseSync checkpoints of the authors' README: id -> (classes, published md5 prefix).
SPARSESYNC = {
    "22-07-18T08-00-00": (3, "56876db"),
    "22-07-13T22-25-49": (21, "63f883e"),
    "22-08-13T21-55-03": (3, "08bb68a"),
    "22-07-28T15-49-45": (21, "a26f207"),
    "22-09-21T21-00-52": (21, "83fba5f"),
    "23-02-26T22-31-22": (21, "d3c40b4"),
}
SYNCHFORMER = {"23-12-23T18-33-57": "4415276", "24-01-02T10-00-53": "19592ed", "24-01-04T16-39-21": "54037d2"}


@pytest.fixture(autouse=True)
def _no_extra_registry(monkeypatch):
    monkeypatch.delenv("AVSYNC_REGISTRY", raising=False)


def write_registry(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


TEAM_ENTRY = """
[models.team-tuned]
id = "team-2024-05"
family = "sparsesync"
classes = 21
max_offset_sec = 2.0
licence = "proprietary"

[models.team-tuned.checkpoint]
url = "https://models.example.com/avsync/team-2024-05.pt"
sha256 = "{sha}"

[models.team-tuned.config]
url = "https://models.example.com/avsync/cfg-team-2024-05.yaml"
"""


def team_registry(tmp_path: Path, extra: str = "", sha: str = "ab" * 32) -> Path:
    return write_registry(tmp_path / "team.toml", "schema = 1\n" + extra + TEAM_ENTRY.format(sha=sha))


def test_official_sparsesync_entries_match_the_authors_table():
    entries = load_registry()
    sparse = {e.id: e for e in entries.values() if e.family == "sparsesync"}
    assert set(sparse) == set(SPARSESYNC)
    for model_id, (classes, md5) in SPARSESYNC.items():
        e = sparse[model_id]
        assert e.classes == classes
        assert e.max_offset_sec == (1.0 if classes == 3 else 2.0)
        assert e.checkpoint.url == f"{A3S}{model_id}/{model_id}.pt"
        assert e.config is not None and e.config.url == f"{A3S}{model_id}/cfg-{model_id}.yaml"
        assert e.checkpoint.md5 is not None and e.checkpoint.md5.startswith(md5)
        assert e.checkpoint_format == "full"
    assert sparse["22-07-28T15-49-45"].checkpoint.size == 653_037_985


def test_official_synchformer_entries_and_the_pinned_hub_file():
    entries = load_registry()
    a3s = {e.id: e for e in entries.values() if e.family == "synchformer" and e.checkpoint.kind == "url"}
    assert {k: e.checkpoint.md5 for k, e in a3s.items()} == SYNCHFORMER
    assert all(e.classes == 21 and e.max_offset_sec == 2.0 for e in a3s.values())
    hub = entries["synchformer-audioset-hf"]
    assert hub.id == "24-01-04T16-39-21" and hub.config is None and hub.checkpoint_format == "state_dict"
    src = hub.checkpoint
    assert (src.hf_repo, src.hf_filename) == ("hkchengrex/MMAudio", "ext_weights/synchformer_state_dict.pth")
    # A commit hash, not a branch: what is downloaded can never change under us.
    assert re.fullmatch(r"[0-9a-f]{40}", src.hf_revision or "")
    assert src.md5 and len(src.md5) == 32 and src.sha256 and len(src.sha256) == 64


def test_every_official_entry_is_documented_and_the_default_is_open_domain():
    entries = load_registry()
    assert len(entries) == 10
    for e in entries.values():
        assert e.description and e.training_data and e.licence and e.upstream, e.name
        assert e.accuracy is not None and 0 < e.accuracy.top1 <= 100 and e.accuracy.test_set, e.name
        assert len(e.grid) == e.classes and e.grid[0] == -e.max_offset_sec and e.grid[-1] == e.max_offset_sec
        assert e.origin == str(official_registry_path())
    default = default_model_name()
    assert default == "sparsesync-audioset"
    assert get_entry(default).training_data.endswith("AudioSet")
    assert get_entry("sparsesync-lrs3").grid[9:12] == (-0.2, 0.0, 0.2)
    assert get_entry("sparsesync-lrs3-3cls").grid == (-1.0, 0.0, 1.0)


def test_synchformer_entries_state_the_motionformer_terms():
    for e in load_registry().values():
        if e.family == "synchformer":
            assert "Motionformer" in e.licence and "CC BY-NC" in e.licence, e.name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UsageError) as info:
        get_entry("sparsesync-audiosett")
    msg = str(info.value)
    assert "unknown model 'sparsesync-audiosett'" in msg and "did you mean 'sparsesync-audioset'" in msg
    assert "synchformer-lrs3" in msg and "\n" not in msg


def test_team_registry_adds_entries_and_may_set_the_default(tmp_path, monkeypatch):
    team = team_registry(tmp_path, extra='default = "team-tuned"\n')
    monkeypatch.setenv("AVSYNC_REGISTRY", str(team))
    entries = load_registry()
    assert "sparsesync-audioset" in entries  # the official ones stay
    e = entries["team-tuned"]
    assert e.checkpoint.sha256 == "ab" * 32 and e.checkpoint.filename == "team-2024-05.pt"
    assert e.config is not None and e.config.filename == "cfg-team-2024-05.yaml"
    assert e.origin == str(team) and e.accuracy is None
    assert default_model_name() == "team-tuned"
    assert get_entry("team-tuned") == e


def test_several_team_registries_separated_by_pathsep(tmp_path, monkeypatch):
    first = team_registry(tmp_path)
    second = write_registry(
        tmp_path / "second.toml",
        TEAM_ENTRY.format(sha="cd" * 32).replace("team-tuned", "other-tuned"),
    )
    monkeypatch.setenv("AVSYNC_REGISTRY", f"{first}{__import__('os').pathsep}{second}")
    entries = load_registry()
    assert {"team-tuned", "other-tuned"} <= set(entries)
    assert default_model_name() == "sparsesync-audioset"


BROKEN = {
    "missing family": ('family = "sparsesync"\n', "", r"entry 'team-tuned': missing 'family'"),
    "unknown family": ('family = "sparsesync"', 'family = "syncnet"', "family 'syncnet' is not one of"),
    "typo in a key": ('sha256 = "', 'sha265 = "', r"checkpoint: unknown key\(s\): sha265"),
    "no checksum": ('sha256 = "' + "ab" * 32 + '"\n', "", "checkpoint needs a checksum"),
    "short md5": ('sha256 = "' + "ab" * 32 + '"', 'md5 = "a26f"', "`md5` must be 7 to 32 hex digits"),
    "bad sha256": ("ab" * 32, "xyz", "`sha256` must be 64 hex digits"),
    "plain http": (
        "https://models.example.com/avsync/team",
        "http://models.example.com/team",
        "must be https",
    ),
    "bad classes": ("classes = 21", "classes = 1", "`classes` must be an integer >= 2"),
    "bad offset": ("max_offset_sec = 2.0", "max_offset_sec = -2", "`max_offset_sec` must be a positive"),
    "upper-case name": ("[models.team-tuned]", "[models.Team]", "entry 'Team': names use lowercase"),
    "half a hub source": (
        'url = "https://models.example.com/avsync/team-2024-05.pt"',
        'hf_repo = "org/name"',
        "a Hub source needs `hf_repo`, `hf_filename` and `hf_revision`",
    ),
    "bad format": ('licence = "proprietary"', 'checkpoint_format = "onnx"', "checkpoint_format 'onnx'"),
    "hub path traversal": (
        'url = "https://models.example.com/avsync/team-2024-05.pt"',
        'hf_repo = "org/name"\nhf_filename = "../../etc/x"\nhf_revision = "main"',
        "`hf_filename` '../../etc/x' must be a relative path",
    ),
    "absolute hub path": (
        'url = "https://models.example.com/avsync/team-2024-05.pt"',
        'hf_repo = "org/name"\nhf_filename = "/etc/x"\nhf_revision = "main"',
        "`hf_filename` '/etc/x' must be a relative path",
    ),
    "hub repo traversal": (
        'url = "https://models.example.com/avsync/team-2024-05.pt"',
        'hf_repo = "../x"\nhf_filename = "a.pt"\nhf_revision = "main"',
        "`hf_repo` must be 'owner/name' of letters",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validation_errors_are_one_line_naming_file_and_entry(tmp_path, monkeypatch, case):
    old, new, expected = BROKEN[case]
    text = "schema = 1\n" + TEAM_ENTRY.format(sha="ab" * 32)
    assert old in text, case
    path = write_registry(tmp_path / "team.toml", text.replace(old, new, 1))
    monkeypatch.setenv("AVSYNC_REGISTRY", str(path))
    with pytest.raises(ConfigError, match=expected) as info:
        load_registry()
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg


def test_file_level_errors(tmp_path, monkeypatch):
    cases = {
        "bad.toml": ("schema = 1\n[models.x\n", "not valid TOML"),
        "schema.toml": ("schema = 2\n", "schema 2 is not supported"),
        "top.toml": ("schema = 1\nmodel = {}\n", r"unknown top-level key\(s\): model"),
        "default.toml": (
            'schema = 1\ndefault = "nothing-here"\n',
            "default model 'nothing-here' is not an entry",
        ),
    }
    for name, (body, expected) in cases.items():
        path = write_registry(tmp_path / name, body)
        monkeypatch.setenv("AVSYNC_REGISTRY", str(path))
        with pytest.raises(ConfigError, match=expected) as info:
            load_registry()
        assert str(info.value).startswith(str(path)), name
    monkeypatch.setenv("AVSYNC_REGISTRY", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml: registry file not found"):
        load_registry()


def test_a_team_entry_cannot_silently_replace_an_official_one(tmp_path, monkeypatch):
    path = team_registry(tmp_path)
    path.write_text(path.read_text().replace("team-tuned", "sparsesync-audioset"))
    monkeypatch.setenv("AVSYNC_REGISTRY", str(path))
    with pytest.raises(
        ConfigError, match=r"entry 'sparsesync-audioset' is already defined in .*registry\.toml"
    ):
        load_registry()


def test_the_official_file_itself_is_valid_toml_with_comments_explaining_the_default():
    text = official_registry_path().read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert data["default"] == "sparsesync-audioset"
    entries, default = parse_registry_file(official_registry_path())
    assert default == "sparsesync-audioset" and len(entries) == 10
    # The justification of the default lives next to it.
    assert "# Default for open-domain video" in text


def test_the_wheel_ships_the_registry_and_every_subpackage():
    """pyproject lists packages explicitly (to map weights/): a forgotten subpackage fails here."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert conf["package-dir"]["sparsesync_cli.weights"] == "weights"
    assert "*.toml" in conf["package-data"]["sparsesync_cli.weights"]
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "sparsesync_cli").rglob("__init__.py")
    }
    assert on_disk | {"sparsesync_cli.weights"} == set(conf["packages"])


def test_importing_the_registry_and_download_modules_stays_light():
    """`avsync --help` imports these: no torch, no huggingface_hub, no filelock at import time."""
    code = (
        "import sys, sparsesync_cli.checkpoints.registry, sparsesync_cli.checkpoints.download\n"
        "heavy = [m for m in ('torch', 'huggingface_hub', 'filelock') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.parametrize("command", [["models"], ["download", "team-tuned"], ["predict", "x.mp4"]])
def test_cli_reports_a_traversal_name_in_one_line(tmp_path, monkeypatch, command):
    text = "schema = 1\n" + TEAM_ENTRY.format(sha="ab" * 32)
    text = text.replace(
        'url = "https://models.example.com/avsync/team-2024-05.pt"',
        'hf_repo = "org/name"\nhf_filename = "../../etc/x"\nhf_revision = "main"',
    )
    path = write_registry(tmp_path / "team.toml", text)
    (tmp_path / "x.mp4").write_bytes(b"not used")
    env = {"AVSYNC_REGISTRY": str(path), "AVSYNC_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-m", "sparsesync_cli", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith(f"avsync: error: {path}: entry 'team-tuned': checkpoint: `hf_filename`")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
