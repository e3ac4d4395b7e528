"""Model configs: the official ``cfg-<id>.yaml`` files as plain Python data.

The authors' configs are OmegaConf YAML with ``${a.b.c}`` interpolations. We only need to read
them, so instead of depending on OmegaConf we parse the YAML and resolve the interpolations
ourselves: a value that is exactly ``${path}`` becomes the referenced node (which may be a
list or a mapping), and ``${path}`` inside a longer string is replaced by its text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, first_line

_INTERP = re.compile(r"\$\{([^${}]+)\}")
_MAX_DEPTH = 32  # interpolation chains longer than this are surely cycles


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official ``cfg-<id>.yaml`` (or any OmegaConf-style YAML) into a resolved dict."""
    import yaml  # imported here so `avsync --help` stays fast

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config ({e.strerror or e})", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not a valid YAML config ({first_line(e, 'invalid YAML')})", path) from None
    if not isinstance(data, Mapping):
        raise ConfigError("not a config: the YAML top level is not a mapping", path)
    try:
        return resolve(data)
    except ConfigError as e:
        raise ConfigError(e.cause, path) from None


def resolve(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``cfg`` with every ``${...}`` interpolation resolved."""

    def lookup(dotted: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ConfigError(f"interpolation ${{{dotted}}} does not terminate (a cycle?)")
        if ":" in dotted or dotted.startswith("."):
            raise ConfigError(f"unsupported interpolation ${{{dotted}}}")
        node: Any = cfg
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ConfigError(f"interpolation ${{{dotted}}} names a missing key")
        return walk(node, depth + 1)

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        if isinstance(node, str) and "${" in node:
            whole = _INTERP.fullmatch(node)
            if whole:
                return lookup(whole.group(1), depth)
            return _INTERP.sub(lambda m: str(lookup(m.group(1), depth)), node)
        return node

    return walk(cfg, 0)


def get(cfg: Mapping[str, Any], dotted: str, default: Any = ...) -> Any:
    """``get(cfg, "model.params.transformer")``; raises ConfigError when missing and no default."""
    node: Any = cfg
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif default is not ...:
            return default
        else:
            raise ConfigError(f"config has no '{dotted}'")
    return node
