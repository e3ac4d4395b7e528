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


def test_names_from_before_the_renames_still_import_as_the_same_objects():
    """Users' code written against 0.2 keeps working: each old name is the new object."""
    import dataclasses
    import importlib

    import torch

    from sparsesync_cli import geometry, sync_model
    from sparsesync_cli.analysis import results, windows
    from sparsesync_cli.evaluation import page
    from sparsesync_cli.evaluation import report as old_evaluation_page
    from sparsesync_cli.output import records, syncmap

    # as README 0.2 shows: from sparsesync_cli.report.syncmap import sync_map_svg
    assert importlib.import_module("sparsesync_cli.report.syncmap").sync_map_svg is syncmap.sync_map_svg
    assert importlib.import_module("sparsesync_cli.report.records").JsonlReport is records.JsonlWriter
    assert records.CsvReport is records.CsvWriter and results.ModelInfo is results.ModelRecord
    assert old_evaluation_page.write_evaluation_html is page.write_evaluation_html
    assert windows.WindowGeometry is geometry.WindowGeometry and windows.Window is geometry.Window

    setup = sync_model.ModelSetup("m", "sparsesync", None, (0.0,), windows.SPARSESYNC_GEOMETRY, "cpu", "fp32")
    model = sync_model.SyncModel(torch.nn.Identity(), setup)
    assert model.info is model.setup is setup  # SyncModel.info: the old name of .setup
    model.info = other = dataclasses.replace(setup, name="n")
    assert model.setup is other
    assert results.ModelRecord.of(other) == results.ModelRecord("n", "sparsesync")
