"""Shared test helpers.

Real data lives outside the repository: ``$EVSIM_SHARED_DATA`` if set, else
``<repo root>/../shared/data``. Tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared data folder (it may not exist)."""
    env = os.environ.get("EVSIM_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def require_shared_data(*parts: str) -> Path:
    """Path to ``<shared data>/<parts...>``, or skip the test when it is missing."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data '{'/'.join(parts)}' not found at {path}; set EVSIM_SHARED_DATA")
    return path


@pytest.fixture
def formats_dir() -> Path:
    """``<shared data>/formats`` (sample files in each supported format)."""
    return require_shared_data("formats")


@pytest.fixture
def nmnist_dir() -> Path:
    """``<shared data>/nmnist-train1k`` (1000 N-MNIST recordings, ``<label>/<id>.bin``)."""
    return require_shared_data("nmnist-train1k")
