"""The order in which nodes run: ComfyUI's ``ExecutionList`` for a static graph.

Reproduced because clients see it (the ``executing`` sequence, the node an interrupt lands
on): dependencies are collected depth-first from each output with an explicit stack, cached
nodes are not scheduled, and among ready nodes ``ux_friendly_pick_node`` prefers output nodes,
then nodes feeding an output directly, then nodes two links away, then the oldest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from supervisor.sim.comfyui.cache import is_link
from supervisor.sim.comfyui.schema import NodeClass


class _TopologicalSort:
    def __init__(
        self,
        prompt: dict[str, Any],
        classes: Mapping[str, NodeClass],
        is_cached: Callable[[str], bool],
    ) -> None:
        self.prompt = prompt
        self.classes = classes
        self.is_cached = is_cached
        self.pending: dict[str, None] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, None]] = {}

    def add_node(self, start: str) -> None:
        stack = [start]
        links: list[tuple[str, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in self.pending:
                continue
            self.pending[node_id] = None
            self.block_count[node_id] = 0
            self.blocking[node_id] = {}
            for value in self.prompt[node_id]["inputs"].values():
                if is_link(value):
                    if not self.is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], node_id))
        for source, target in links:
            if not self.is_cached(source) and target not in self.blocking[source]:
                self.blocking[source][target] = None
                self.block_count[target] += 1

    def is_output(self, node_id: str) -> bool:
        return self.classes[self.prompt[node_id]["class_type"]].output_node

    def pick(self, ready: list[str]) -> str:
        for node_id in ready:
            if self.is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self.is_output(blocked) for blocked in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self.blocking[node_id]:
                if any(self.is_output(further) for further in self.blocking[blocked]):
                    return node_id
        return ready[0]

    def order(self) -> list[str]:
        result: list[str] = []
        while self.pending:
            ready = [node_id for node_id in self.pending if self.block_count[node_id] == 0]
            if not ready:
                raise ValueError(f"dependency cycle among nodes {sorted(self.pending)}")
            node_id = self.pick(ready)
            result.append(node_id)
            del self.pending[node_id]
            for blocked in self.blocking[node_id]:
                self.block_count[blocked] -= 1
        return result


def execution_order(
    prompt: dict[str, Any],
    outputs: list[str],
    classes: Mapping[str, NodeClass],
    is_cached: Callable[[str], bool],
) -> list[str]:
    """Node ids in the order they execute; cached output nodes are included (they replay
    their UI), other cached nodes are not."""
    sort = _TopologicalSort(prompt, classes, is_cached)
    for output_id in outputs:
        sort.add_node(output_id)
    return sort.order()
