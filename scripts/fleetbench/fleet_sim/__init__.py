"""The fleet simulation of ``scripts/bench_fleet_sim.py``: the sizes and the seeded trace
(:mod:`.trace`), the per-job records and metrics (:mod:`.metrics`), the processes and the two
dispatch modes (:mod:`.fleet`) and the markdown report (:mod:`.report`)."""
