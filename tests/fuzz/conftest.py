"""Fixtures of the fuzz tests (the Redis ones use the shared ``redis_url``)."""

from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib does not put test folders on sys.path; the helpers module next to
# this file has a unique name ("fuzz_servers").
sys.path.insert(0, str(Path(__file__).resolve().parent))
