"""The promised Python API: every name in ``sparsesync_cli.__all__`` resolves, and importing the
package stays instant (torch and PyAV load on first use)."""

from __future__ import annotations

import subprocess
import sys

import sparsesync_cli


def test_every_promised_name_resolves_and_nothing_else_is_promised():
    for name in sparsesync_cli.__all__:
        assert getattr(sparsesync_cli, name) is not None, name
    assert sorted(dir(sparsesync_cli)) == sorted(sparsesync_cli.__all__)
    # Internals stay importable from their modules, not from the package root.
    assert not hasattr(sparsesync_cli, "plan_windows")
    from sparsesync_cli.analysis.windows import plan_windows

    assert callable(plan_windows)


def test_importing_the_package_loads_neither_torch_nor_pyav():
    code = "import sys, sparsesync_cli; print(sorted(m for m in ('torch', 'av') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
