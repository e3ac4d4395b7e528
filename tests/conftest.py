"""Shared test fixtures: where ``../shared`` lives, and a fixed-width CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("AVSYNC_SHARED")
    return Path(env).resolve() if env else (REPO_ROOT.parent / "shared").resolve()


def _must_have_shared() -> bool:
    # .ci/run sets this: in CI a missing ../shared is a failure, never a silent skip.
    return os.environ.get("AVSYNC_REQUIRE_SHARED") == "1" or os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared data (fixtures, media); set AVSYNC_SHARED to point elsewhere."""
    d = _shared_dir()
    if not (d / "fixtures").is_dir():
        msg = f"shared data not found at {d} (set AVSYNC_SHARED to the folder holding fixtures/ and media/)"
        if _must_have_shared():
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def cli() -> Callable[..., Any]:
    """The fixed-width CLI runner: ``cli("predict", path, "--json")`` runs ``avsync`` in this
    process on a 200-column terminal (``columns=80`` for a narrow one); see
    :func:`helpers.cli.invoke`, which module-level helpers of the tests call directly."""
    from helpers.cli import invoke

    return invoke
