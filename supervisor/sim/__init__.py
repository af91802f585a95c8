"""The simulated fleet for fleetq's tests and demo: fake backends and simulated GPUs.

``supervisor.sim.comfyui`` and ``supervisor.sim.a1111`` are fake ComfyUI and AUTOMATIC1111
servers: real aiohttp servers that follow the real APIs (see ``reference/backends.md`` and the
ComfyUI captures). Both can run N instances on consecutive ports in one process and carry fault
hooks under ``/fake/*``. ``supervisor.sim.gpu`` simulates NVML (``--simulate-gpus N``).

Production code never imports this package (an import-linter contract): the supervisor loads
``supervisor.sim.gpu`` only when asked to simulate, and the CLI starts the fake servers.
"""
