"""Fixtures for the output store tests: a real S3 API server, fake backends, supervisors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetq import Settings
from tests.fixtures import graph  # noqa: F401 (fixture)
from tests.s3server import s3_endpoint, s3_settings  # noqa: F401 (fixtures)
from tests.supervisor.conftest import comfy_factory  # noqa: F401 (fixture)


@pytest.fixture
def file_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with outputs in a fresh folder."""
    return settings.with_overrides(output_store=(tmp_path / "outputs").as_uri())


@pytest.fixture(params=["file", "s3"])
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """The test's settings with outputs in a shared folder, then in S3."""
    name = "file_settings" if request.param == "file" else "s3_settings"
    value: Settings = request.getfixturevalue(name)
    return value
