"""``python -m supervisor.sim.a1111 --port 7860 --count 2``"""

import sys

from supervisor.sim.a1111.cli import main

sys.exit(main())
