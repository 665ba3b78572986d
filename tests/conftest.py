"""Shared test fixtures: where the shared vectors live, and the CI rule for external services."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(path: Path) -> Path:
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI must run with shared/ beside the project")
        pytest.skip(f"{path} not found: clone the project with shared/ beside it to run vector tests")
    return path


@pytest.fixture(scope="session")
def avalon_vectors() -> Path:
    return _require(SHARED / "vectors" / "avalon")


@pytest.fixture(scope="session")
def sgx_vectors() -> Path:
    return _require(SHARED / "vectors" / "sgx")


from support import RunningNode, running_node  # noqa: E402


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("node")) as n:
        yield n
