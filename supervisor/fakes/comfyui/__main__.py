"""``python -m supervisor.fakes.comfyui --port 8188 --count 4``"""

import sys

from supervisor.fakes.comfyui.cli import main

sys.exit(main())
