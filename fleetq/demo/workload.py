"""The demo's load generator: a realistic mix of image jobs.

Many short jobs, a few long ones, some high-priority, an occasional failing workflow, on the
fake ComfyUI (its ``FakeWork`` node sets duration, progress steps and outcome) and the fake
A1111 (steps times its per-step time). Each ComfyUI job uses one checkpoint (fed to FakeWork's
``model``, so the fake loads it), drawn by popularity; the machines hold different sets of
checkpoints (:func:`machine_checkpoints`), so the scheduler sends each job where its model is,
preferably to a GPU that has it loaded. A few jobs (:func:`jobs_for_new_model`) need a checkpoint
that no machine has until the demo adds it to one partway through (:data:`NEW_MODEL`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DemoJob:
    service: str
    workflow: dict[str, Any]
    priority: int
    kind: str  # short, long, urgent, failing, a1111, new-model
    max_attempts: int = 3
    #: Who it is for: the studio sends most of the work, the web app a share of it and every
    #: urgent job; fair share keeps the web app's jobs from waiting behind the studio's.
    tenant: str = "studio"


#: Every machine has the base model; the others are spread over the machines.
BASE_MODEL = "sdxl_base_1.0.safetensors"
OTHER_MODELS = ("flux1-dev.safetensors", "sd15_realistic.safetensors")
#: Checkpoints by popularity: (file, share of the ComfyUI jobs).
POPULARITY = ((BASE_MODEL, 0.6), (OTHER_MODELS[0], 0.25), (OTHER_MODELS[1], 0.15))
#: How long a fake instance takes to load a checkpoint other than the loaded one.
MODEL_LOAD_S = 1.5
#: A checkpoint no demo machine has at first: its jobs wait, marked unschedulable, until the
#: demo copies it onto the first machine and asks that machine to read its capabilities again.
NEW_MODEL = "sd35_large.safetensors"
#: How many jobs for :data:`NEW_MODEL` the demo submits at its start.
NEW_MODEL_JOBS = 4


def machine_checkpoints(machine: int) -> tuple[str, ...]:
    """The checkpoints of demo machine ``machine`` (0-based): the base model everywhere, then
    one other model by turns, and every model on each third machine."""
    if machine % 3 == 2:
        return (BASE_MODEL, *OTHER_MODELS)
    return (BASE_MODEL, OTHER_MODELS[machine % 2])


def jobs_for_new_model(count: int = NEW_MODEL_JOBS, seed: int = 7) -> list[DemoJob]:
    """Short ComfyUI jobs on :data:`NEW_MODEL`, by turns for each tenant. Drawn from their own
    random stream, so the rest of the workload is the same with or without them."""
    rng = random.Random(f"new-model-{seed}")
    jobs = []
    for i in range(count):
        workflow = comfy_workflow(rng.uniform(0.6, 1.2), 5, "ok", rng.randrange(1 << 30), NEW_MODEL)
        jobs.append(
            DemoJob("comfyui", workflow, 0, "new-model", tenant=("studio", "webapp")[i % 2])
        )
    return jobs


def comfy_workflow(
    seconds: float, steps: int, outcome: str, seed: int, checkpoint: str = BASE_MODEL
) -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "5": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": seed % 0xFFFFFF}},
        "6": {"class_type": "FakeWork",
              "inputs": {"image": ["5", 0], "model": ["4", 0], "seconds": round(seconds, 2),
                         "steps": steps, "outcome": outcome, "seed": seed,
                         "error_message": "CUDA out of memory (simulated)"}},
        "9": {"class_type": "SaveImage",
              "inputs": {"images": ["6", 0], "filename_prefix": f"demo/img_{seed}"}},
    }  # fmt: skip


def a1111_body(steps: int, fail: bool, seed: int) -> dict[str, Any]:
    prompt = "a lighthouse at dawn, oil painting" + (" fleetq:fail" if fail else "")
    return {"prompt": prompt, "negative_prompt": "blurry", "steps": steps, "width": 512,
            "height": 512, "seed": seed, "sampler_name": "Euler a", "cfg_scale": 7}  # fmt: skip


class Workload:
    """Draws demo jobs; deterministic for a given seed."""

    def __init__(self, seed: int = 7, with_a1111: bool = True) -> None:
        self.rng = random.Random(seed)
        self.with_a1111 = with_a1111
        self.counter = 0

    def next(self) -> DemoJob:
        job = self._draw()
        if job.kind == "urgent" or self.rng.random() < 0.25:
            return replace(job, tenant="webapp")
        return job

    def _draw(self) -> DemoJob:
        self.counter += 1
        seed = self.rng.randrange(1 << 30)
        roll = self.rng.random()
        if self.with_a1111 and roll < 0.15:
            fail = self.rng.random() < 0.1
            return DemoJob("a1111", a1111_body(self.rng.randint(8, 20), fail, seed), 0,
                           "a1111", max_attempts=1 if fail else 3)  # fmt: skip
        checkpoint = self.rng.choices([m for m, _ in POPULARITY], [w for _, w in POPULARITY])[0]
        if roll < 0.20:
            return DemoJob("comfyui", comfy_workflow(self.rng.uniform(0.5, 1.5), 5, "ok", seed,
                                                     checkpoint),
                           self.rng.choice([50, 100]), "urgent")  # fmt: skip
        if roll < 0.24:
            return DemoJob("comfyui", comfy_workflow(self.rng.uniform(10, 18), 20, "ok", seed,
                                                     checkpoint), -10, "long")  # fmt: skip
        if roll < 0.27:
            return DemoJob("comfyui", comfy_workflow(0.5, 2, "error", seed, checkpoint), 0,
                           "failing", max_attempts=2)  # fmt: skip
        seconds = self.rng.uniform(0.6, 2.5)
        return DemoJob("comfyui", comfy_workflow(seconds, 8, "ok", seed, checkpoint), 0, "short")
