"""``python -m supervisor.sim.comfyui --port 8188 --count 4``"""

import sys

from supervisor.sim.comfyui.cli import main

sys.exit(main())
