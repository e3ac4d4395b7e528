"""The models avsync knows by name, read from ``weights/registry.toml`` (data, not code).

``load_registry()`` returns ``{name: ModelEntry}``: the official entries shipped with the package,
merged with the entries of the files named by ``AVSYNC_REGISTRY`` (a team's own fine-tuned
checkpoints, same format, several files separated by ``os.pathsep``). Every problem in a registry
file is one :class:`ConfigError` line naming the file and the entry.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from .. import families
from ..errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REGISTRY_ENV = "AVSYNC_REGISTRY"
SCHEMA_VERSION = 1
CHECKPOINT_FORMATS = ("full", "state_dict")
# Names and ids become folder and file names in the cache: keep them to safe characters.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
# The authors publish 7-character md5 prefixes; shorter ones would prove nothing.
MIN_MD5_PREFIX = 7
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_ENTRY_KEYS = {
    "id", "family", "description", "training_data", "classes", "max_offset_sec", "checkpoint_format",
    "accuracy", "licence", "licence_note", "upstream", "checkpoint", "config",
}  # fmt: skip
_SOURCE_KEYS = {"url", "hf_repo", "hf_filename", "hf_revision", "md5", "sha256", "size"}
_ACCURACY_KEYS = {"top1", "top1_pm1", "test_set", "source"}


@dataclass(frozen=True)
class Source:
    """One file of a model: where to fetch it and the checksums it must match.

    Exactly one location: ``url`` (https, or http on this machine only), or a Hugging Face Hub
    file (``hf_repo``, ``hf_filename``, pinned ``hf_revision``). ``md5`` is a full md5 or the
    prefix the authors publish; every checksum that is present must match.
    """

    url: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    hf_revision: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    @property
    def kind(self) -> str:
        """``"url"`` or ``"hf"``."""
        return "hf" if self.hf_repo else "url"

    @property
    def filename(self) -> str:
        """The file's base name (the name it gets in the cache)."""
        if self.hf_filename:
            return self.hf_filename.rsplit("/", 1)[-1]
        return urlsplit(self.url or "").path.rsplit("/", 1)[-1]

    @property
    def location(self) -> str:
        """Where the file comes from, for messages."""
        if self.kind == "hf":
            return f"hf://{self.hf_repo}/{self.hf_filename}@{self.hf_revision}"
        return self.url or ""


@dataclass(frozen=True)
class Accuracy:
    """A published accuracy: Acc@1 (and Acc@1 within +-1 class) in %, on ``test_set``."""

    top1: float
    test_set: str
    top1_pm1: float | None = None
    source: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A named checkpoint: what it is, what it was trained on, where to get it."""

    name: str
    id: str
    family: str
    classes: int
    max_offset_sec: float
    checkpoint: Source
    config: Source | None = None
    checkpoint_format: str = "full"
    description: str = ""
    training_data: str = ""
    accuracy: Accuracy | None = None
    licence: str = ""
    licence_note: str = ""
    upstream: str = ""
    origin: str = ""  # the registry file that defined this entry

    @property
    def grid(self) -> tuple[float, ...]:
        """Offsets of the classes in seconds (positive = audio early), as the models define them."""
        if self.classes == 1:
            return (0.0,)
        step = 2 * self.max_offset_sec / (self.classes - 1)
        return tuple(round(-self.max_offset_sec + i * step, 6) for i in range(self.classes))


def official_registry_path() -> Path:
    """The registry shipped with avsync: ``weights/registry.toml``.

    In a source checkout it sits next to the package; an installed wheel carries it as the
    package data ``sparsesync_cli/weights/registry.toml`` (pyproject maps ``weights/`` there).
    """
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "weights" / "registry.toml"
    if checkout.is_file() and (package.parent / "pyproject.toml").is_file():
        return checkout
    return package / "weights" / "registry.toml"


def load_registry() -> dict[str, ModelEntry]:
    """All known models by name: the official registry plus the files in ``AVSYNC_REGISTRY``.

    An extra file may add entries (a name already defined is an error, so an official model is
    never silently replaced) and may set ``default``.
    """
    entries, _ = _load_all()
    return entries


def default_model_name() -> str:
    """The model used when none is named: the last ``default`` set (extra registries win)."""
    _, default = _load_all()
    return default


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; an unknown name is a :class:`UsageError` listing the valid ones."""
    entries = load_registry()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown model {name!r}{hint}; known models: {', '.join(sorted(entries))}")


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (plain http is accepted only there)."""
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def _load_all() -> tuple[dict[str, ModelEntry], str]:
    official = official_registry_path()
    entries, default = parse_registry_file(official)
    default_origin = official
    extra = os.environ.get(REGISTRY_ENV, "")
    for item in (p for p in extra.split(os.pathsep) if p.strip()):
        path = Path(item).expanduser()
        more, more_default = parse_registry_file(path)
        for name, entry in more.items():
            if name in entries:
                raise ConfigError(
                    f"entry {name!r} is already defined in {entries[name].origin}; choose another name", path
                )
            entries[name] = entry
        if more_default:
            default, default_origin = more_default, path
    if not default:
        raise ConfigError("no `default` model is set", official)
    if default not in entries:
        raise ConfigError(f"default model {default!r} is not an entry of any registry", default_origin)
    return entries, default


def parse_registry_file(path: Path) -> tuple[dict[str, ModelEntry], str | None]:
    """Read and validate one registry file: ``({name: entry}, default or None)``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("registry file not found", path) from None
    except OSError as e:
        raise ConfigError(f"cannot read registry file: {e.strerror or e}", path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", path) from None
    unknown = set(data) - {"schema", "default", "models"}
    if unknown:
        raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(unknown))}", path)
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ConfigError(f"schema {schema!r} is not supported (this avsync reads {SCHEMA_VERSION})", path)
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigError("`default` must be a model name (a string)", path)
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError("`models` must be a table of [models.<name>] entries", path)
    entries = {name: _parse_entry(name, table, path) for name, table in models.items()}
    return entries, default


def _parse_entry(name: str, table: Any, path: Path) -> ModelEntry:
    def fail(msg: str) -> ConfigError:
        return ConfigError(f"entry {name!r}: {msg}", path)

    if not _NAME_RE.match(name):
        raise fail("names use lowercase letters, digits, '.', '_' and '-' only")
    if not isinstance(table, dict):
        raise fail("must be a table")
    unknown = set(table) - _ENTRY_KEYS
    if unknown:
        raise fail(f"unknown key(s): {', '.join(sorted(unknown))}")
    for key in ("id", "family", "classes", "max_offset_sec", "checkpoint"):
        if key not in table:
            raise fail(f"missing {key!r}")
    model_id = table["id"]
    if not isinstance(model_id, str) or not _ID_RE.match(model_id):
        raise fail("`id` must be a string of letters, digits, '.', '_' and '-'")
    family = table["family"]
    if family not in families.NAMES:
        raise fail(f"family {family!r} is not one of {', '.join(families.NAMES)}")
    classes = table["classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise fail("`classes` must be an integer >= 2")
    max_off = table["max_offset_sec"]
    if isinstance(max_off, bool) or not isinstance(max_off, int | float) or not max_off > 0:
        raise fail("`max_offset_sec` must be a positive number of seconds")
    fmt = table.get("checkpoint_format", "full")
    if fmt not in CHECKPOINT_FORMATS:
        raise fail(f"checkpoint_format {fmt!r} is not one of {', '.join(CHECKPOINT_FORMATS)}")
    texts = {}
    for key in ("description", "training_data", "licence", "licence_note", "upstream"):
        value = table.get(key, "")
        if not isinstance(value, str):
            raise fail(f"`{key}` must be a string")
        texts[key] = value
    checkpoint = _parse_source(table["checkpoint"], "checkpoint", fail)
    if checkpoint.md5 is None and checkpoint.sha256 is None:
        raise fail("checkpoint needs a checksum (`sha256`, or the `md5` its authors publish)")
    config = None
    if "config" in table:
        config = _parse_source(table["config"], "config", fail)
        if config.kind != "url":
            raise fail("config: only `url` sources are supported for configs")
        if config.filename == checkpoint.filename:
            raise fail("config and checkpoint must have different file names")
    return ModelEntry(
        name=name,
        id=model_id,
        family=family,
        classes=classes,
        max_offset_sec=float(max_off),
        checkpoint=checkpoint,
        config=config,
        checkpoint_format=fmt,
        accuracy=_parse_accuracy(table.get("accuracy"), fail),
        origin=str(path),
        **texts,
    )


def _parse_source(table: Any, what: str, fail: Any) -> Source:
    if not isinstance(table, Mapping):
        raise fail(f"`{what}` must be a table")
    unknown = set(table) - _SOURCE_KEYS
    if unknown:
        raise fail(f"{what}: unknown key(s): {', '.join(sorted(unknown))}")
    for key in _SOURCE_KEYS - {"size"}:
        if key in table and not isinstance(table[key], str):
            raise fail(f"{what}: `{key}` must be a string")
    url = table.get("url")
    hub = [table.get(k) for k in ("hf_repo", "hf_filename", "hf_revision")]
    if url and any(hub):
        raise fail(f"{what}: give either `url` or `hf_repo`/`hf_filename`/`hf_revision`, not both")
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_url(url)):
            raise fail(f"{what}: url must be https:// (plain http only on this machine): {url}")
        if not parts.hostname:
            raise fail(f"{what}: url has no host: {url}")
    elif any(hub):
        if not all(hub):
            raise fail(f"{what}: a Hub source needs `hf_repo`, `hf_filename` and `hf_revision`")
        if table["hf_repo"].count("/") != 1:
            raise fail(f"{what}: `hf_repo` must be 'owner/name'")
        if not all(_ID_RE.match(part) and part not in (".", "..") for part in table["hf_repo"].split("/")):
            raise fail(f"{what}: `hf_repo` must be 'owner/name' of letters, digits, '.', '_' and '-'")
        # The Hub path becomes a path in the cache: no traversal, no absolute path, no odd names.
        if not all(
            _FILENAME_RE.match(part) and part not in (".", "..") for part in table["hf_filename"].split("/")
        ):
            raise fail(
                f"{what}: `hf_filename` {table['hf_filename']!r} must be a relative path of names made of "
                "letters, digits, '.', '_' and '-' (no '..')"
            )
    else:
        raise fail(f"{what}: needs `url` or `hf_repo`/`hf_filename`/`hf_revision`")
    md5 = table.get("md5")
    if md5 is not None:
        md5 = md5.lower()
        if not (_HEX_RE.match(md5) and MIN_MD5_PREFIX <= len(md5) <= 32):
            raise fail(f"{what}: `md5` must be {MIN_MD5_PREFIX} to 32 hex digits")
    sha256 = table.get("sha256")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not (_HEX_RE.match(sha256) and len(sha256) == 64):
            raise fail(f"{what}: `sha256` must be 64 hex digits")
    size = table.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise fail(f"{what}: `size` must be a positive number of bytes")
    source = Source(
        url=url,
        hf_repo=table.get("hf_repo"),
        hf_filename=table.get("hf_filename"),
        hf_revision=table.get("hf_revision"),
        md5=md5,
        sha256=sha256,
        size=size,
    )
    if not _FILENAME_RE.match(source.filename):
        raise fail(f"{what}: the file name {source.filename!r} must be letters, digits, '.', '_' and '-'")
    return source


def _is_percentage(number: object) -> TypeGuard[int | float]:
    return not isinstance(number, bool) and isinstance(number, int | float) and 0 <= number <= 100


def _parse_accuracy(value: Any, fail: Any) -> Accuracy | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise fail("`accuracy` must be a table")
    unknown = set(value) - _ACCURACY_KEYS
    if unknown:
        raise fail(f"accuracy: unknown key(s): {', '.join(sorted(unknown))}")
    top1, pm1 = value.get("top1"), value.get("top1_pm1")
    if not _is_percentage(top1):
        raise fail("accuracy: `top1` must be a percentage")
    if pm1 is not None and not _is_percentage(pm1):
        raise fail("accuracy: `top1_pm1` must be a percentage")
    test_set = value.get("test_set")
    if not isinstance(test_set, str) or not test_set:
        raise fail("accuracy: `test_set` must name the test set")
    source = value.get("source", "")
    if not isinstance(source, str):
        raise fail("accuracy: `source` must be a string")
    return Accuracy(
        top1=float(top1), test_set=test_set, top1_pm1=None if pm1 is None else float(pm1), source=source
    )
