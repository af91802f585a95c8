"""The chaos run of ``scripts/chaos.py``, one concept a module: options and report
(:mod:`.options`), the seeded workload and schedule (:mod:`.workload`), the recording fake
ComfyUI (:mod:`.fakes`), the processes (:mod:`.fleet`), the run's state (:mod:`.state`), the
fault injectors (:mod:`.faults`), the run loop (:mod:`.run`) and the checks (:mod:`.checks`)."""

from __future__ import annotations

import sys

from fleetbench.paths import ROOT

# The reply-dropping proxy and the key audit are shared with the tests.
sys.path.insert(0, str(ROOT / "tests" / "chaos"))
