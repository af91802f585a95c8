"""Which requirement classes no live GPU can run (fleetq/schedulable.py): the check of many
classes at once agrees with the one-class check, GPU by GPU, whatever the fleet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetq.fleet import FleetView
from fleetq.requirements import Capabilities, Requirements, meets
from fleetq.schedulable import unschedulable_classes, why_unschedulable
from tests.scheduling.test_eta import fleet_of

MODELS = ("a", "b", "c", "d")
DOCS = {
    "ab": Capabilities.make(models={"checkpoints": ["a", "b"]}, labels={"gpu": "l4"}),
    "bc": Capabilities.make(models={"checkpoints": ["b", "c"]}, labels={"gpu": "h100"}),
    "c": Capabilities.make(models={"checkpoints": ["c"]}, labels={"gpu": "h100"}),
}
CLASSES = {
    f"{model}-{label}": Requirements.make(
        models={"checkpoints": [model]}, labels={"gpu": label} if label else None
    )
    for model in MODELS
    for label in ("", "l4", "h100")
}
#: A GPU record: its service and the digest it publishes ('' none; 'gone' one never stored).
gpus = st.lists(
    st.tuples(
        st.sampled_from(["comfyui", "a1111"]), st.sampled_from(["ab", "bc", "c", "", "gone"])
    ),
    max_size=6,
)


def test_the_reason_is_given_against_the_closest_gpu_and_once_per_class() -> None:
    fleet = fleet_of(
        {"index": 0, "services": ["comfyui"], "capabilities": {"comfyui": "ab"}},
        {"index": 1, "services": ["comfyui"], "capabilities": {"comfyui": "bc"}},
        {"index": 2, "services": ["comfyui"], "capabilities": {"comfyui": "ab"}},
    )
    reasons = unschedulable_classes(CLASSES, "comfyui", fleet, DOCS)
    assert reasons == {
        "a-h100": "needs label gpu=h100 (has gpu=l4)",  # GPUs 0 and 1 miss one part: the first
        "c-l4": "needs checkpoint c",
        "d-": "needs checkpoint d",
        "d-l4": "needs checkpoint d",
        "d-h100": "needs checkpoint d",
    }
    assert unschedulable_classes(CLASSES, "a1111", fleet, DOCS) == dict.fromkeys(
        CLASSES, "no live machine runs service a1111"
    )


def gpu_by_gpu(
    requirements: Requirements, service: str, fleet: FleetView, documents: dict[str, Capabilities]
) -> str | None:
    """The rule written plainly: each live GPU of the service in turn; one that publishes
    nothing known, or meets the requirements, can run the job; else the reason against the
    first of those with the fewest unmet parts."""
    gpus = [g for h in fleet.hosts if h.online for g in h.gpus if service in g.services]
    if not gpus:
        return f"no live machine runs service {service}"
    closest: tuple[int, str] | None = None
    for gpu in gpus:
        capabilities = documents.get(gpu.capabilities.get(service, ""))
        reason = None if capabilities is None else meets(requirements, capabilities)
        if reason is None:
            return None
        if closest is None or reason.count("; ") + 1 < closest[0]:
            closest = (reason.count("; ") + 1, reason)
    return None if closest is None else closest[1]


@given(gpus)
def test_many_classes_at_once_agree_with_the_rule_gpu_by_gpu(
    records: list[tuple[str, str]],
) -> None:
    fleet = fleet_of(*(
        {"index": i, "services": [service], "capabilities": {service: digest} if digest else {}}
        for i, (service, digest) in enumerate(records)
    ))  # fmt: skip
    for service in ("comfyui", "a1111"):
        plain = {
            class_id: reason
            for class_id, requirements in CLASSES.items()
            if (reason := gpu_by_gpu(requirements, service, fleet, DOCS)) is not None
        }
        assert unschedulable_classes(CLASSES, service, fleet, DOCS) == plain
        for class_id, requirements in CLASSES.items():
            assert why_unschedulable(requirements, service, fleet, DOCS) == plain.get(class_id)
