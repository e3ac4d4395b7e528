"""Deprecated (before 0.3): every name here is :mod:`sparsesync_cli.output.assets`'s."""

from __future__ import annotations

from typing import Any

from ..output import assets as _module


def __getattr__(name: str) -> Any:
    return getattr(_module, name)
