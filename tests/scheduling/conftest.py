"""Fixtures for the scheduling tests: fake backends on free loopback ports."""

from __future__ import annotations

from tests.fixtures import a1111_factory, comfy_factory, graph, worker  # noqa: F401 (fixtures)
