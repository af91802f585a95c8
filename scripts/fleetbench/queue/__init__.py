"""The queue benchmark of ``scripts/bench_queue.py``: sizes, targets and small helpers
(:mod:`.sizes`), the job functions and worker processes (:mod:`.workers`), one adapter per queue
library (:mod:`.systems`), the three measurements (:mod:`.measure`), the phases of a run
(:mod:`.phases`) and the markdown report (:mod:`.report`)."""
