"""The one fixed-width CLI runner of the tests (the ``cli`` fixture of conftest.py is this)."""

from __future__ import annotations

from typing import Any


def invoke(*args: Any, columns: int = 200, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """Run ``avsync ARGS`` in this process on a ``columns``-wide terminal; click's ``Result``
    (``exit_code``, ``output``, ``stdout``, ``stderr``). Arguments are str()-ed, bytes stay bytes;
    ``env`` adds variables, other keywords go to ``CliRunner.invoke``."""
    from typer.testing import CliRunner

    from sparsesync_cli.cli import app

    argv = [a if isinstance(a, (str, bytes)) else str(a) for a in args]
    return CliRunner().invoke(app, argv, env={"COLUMNS": str(columns), **(env or {})}, **kwargs)
