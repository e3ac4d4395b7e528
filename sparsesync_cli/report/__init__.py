"""Deprecated (before 0.3) name of :mod:`sparsesync_cli.output`; kept so that imports such as
``from sparsesync_cli.report.syncmap import sync_map_svg`` keep working. "Report" now means the
HTML report only (``avsync report``, ``--report``); import from ``sparsesync_cli.output``.
"""

from __future__ import annotations

import importlib
import sys

_MODULES = ("assets", "html", "records", "svg", "syncmap")

# Each old module name is the new module object itself (not a copy), so classes compare equal
# and a monkeypatch through either name reaches the one module.
for _name in _MODULES:
    _module = importlib.import_module(f"..output.{_name}", __name__)
    sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
