"""Fake ComfyUI and AUTOMATIC1111 servers for fleetq's tests and demo.

Real aiohttp servers that follow the real APIs (see ``reference/backends.md`` and the
ComfyUI captures): ``supervisor.sim.comfyui`` and ``supervisor.sim.a1111``. Both can run
N instances on consecutive ports in one process and carry fault hooks under ``/fake/*``.
"""
