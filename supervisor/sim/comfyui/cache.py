"""The output cache: ComfyUI's "classic" cache keyed by input signatures.

A node's signature is its class, its widget values and the signatures of the nodes it is
linked to, so the same sub-graph submitted again (under any node ids) hits the cache. Like
the classic cache, only entries whose signature occurs in the current prompt survive the
start of that prompt: the cache remembers the last prompt, not every prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def is_link(value: Any) -> bool:
    """``[source_node_id, output_index]``: ComfyUI's link in an API-format graph."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def node_signatures(prompt: dict[str, Any]) -> dict[str, str]:
    """A signature per node id; a node that cannot be resolved gets one that never matches."""
    memo: dict[str, str] = {}

    def signature(node_id: str, path: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt.get(node_id)
        if not isinstance(node, dict) or node_id in path:
            return f"unresolvable:{id(prompt)}:{node_id}"
        parts: list[Any] = [node.get("class_type")]
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            for key in sorted(inputs):
                value = inputs[key]
                if is_link(value):
                    parts.append([key, "LINK", signature(value[0], path | {node_id}), value[1]])
                else:
                    parts.append([key, value])
        memo[node_id] = json.dumps(parts, sort_keys=True, default=str)
        return memo[node_id]

    return {node_id: signature(node_id, frozenset()) for node_id in prompt}


@dataclass(frozen=True)
class CacheEntry:
    """A node's output values and, for output nodes, the UI dict it showed."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class OutputCache:
    """Signature -> outputs of the nodes of the most recent prompt."""

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def set_prompt(self, signatures: set[str]) -> None:
        """Forget everything the new prompt does not contain (``clean_unused``)."""
        self._entries = {key: entry for key, entry in self._entries.items() if key in signatures}

    def get(self, signature: str) -> CacheEntry | None:
        return self._entries.get(signature)

    def put(self, signature: str, entry: CacheEntry) -> None:
        self._entries[signature] = entry

    def clear(self) -> None:
        self._entries.clear()
