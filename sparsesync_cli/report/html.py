"""Deprecated (before 0.3): every name here is :mod:`sparsesync_cli.output.html`'s."""

from __future__ import annotations

from typing import Any

from ..output import html as _module


def __getattr__(name: str) -> Any:
    return getattr(_module, name)
