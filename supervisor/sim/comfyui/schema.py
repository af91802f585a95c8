"""Node classes of the fake ComfyUI: input specs, the ``/object_info`` rendering, run hooks.

A node class is data (its inputs and outputs, rendered exactly as ComfyUI's ``node_info``
does) plus an async ``run`` function. Values that flow along links are small stand-ins
(``FakeImage``, ``FakeModel``): nothing is ever computed, only sized and coloured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, Protocol

InputCategory = Literal["required", "optional"]


class InterruptProcessingError(Exception):
    """Raised inside a node when the interrupt flag is seen (ComfyUI's
    ``InterruptProcessingException``); reported as ``execution_interrupted``."""


@dataclass(frozen=True)
class FakeImage:
    """An IMAGE batch: what EmptyImage makes and SaveImage writes as PNG files."""

    width: int
    height: int
    batch_size: int = 1
    color: int = 0

    def __str__(self) -> str:
        # ComfyUI formats non-primitive inputs with str() in execution_error.current_inputs.
        return f"tensor(shape=[{self.batch_size}, {self.height}, {self.width}, 3])"


@dataclass(frozen=True)
class FakeModel:
    """A MODEL, CLIP or VAE loaded from a checkpoint file."""

    kind: str
    name: str


class Files(Protocol):
    """Where nodes write their images (implemented by ``files.OutputFiles``)."""

    def save_images(
        self,
        image: FakeImage,
        filename_prefix: str,
        folder_type: str,
        text: Mapping[str, str],
    ) -> list[dict[str, str]]: ...


class NodeRuntime(Protocol):
    """What a running node may do besides computing: report progress, wait, write files."""

    @property
    def files(self) -> Files: ...

    @property
    def sampler_step_s(self) -> float:
        """How long one KSampler step takes (``ComfyUIOptions.sampler_step_s``)."""

    @property
    def previews(self) -> bool:
        """Whether samplers send previews (the server's ``--preview-method``, or the prompt's
        ``extra_data.preview_method``, is not ``none``)."""

    async def progress(self, value: int, total: int, preview: FakeImage | None = None) -> None:
        """Report progress (and optionally a preview image); raises
        ``InterruptProcessingError`` if an interrupt is pending."""

    async def wait_for_interrupt(self) -> NoReturn:
        """Block until interrupted, then raise ``InterruptProcessingError``."""

    async def load_model(self, name: str) -> None:
        """Make ``name`` the loaded model, taking the load time if another one is loaded."""


@dataclass
class NodeCall:
    """One execution of one node: its resolved inputs and the prompt around it."""

    node_id: str
    inputs: dict[str, Any]
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    runtime: NodeRuntime


@dataclass
class NodeResult:
    """Output values (one per return type) and the UI dict shown for output nodes."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


NodeFunction = Callable[[NodeCall], Awaitable[NodeResult]]


@dataclass(frozen=True)
class InputSpec:
    """One input as ``INPUT_TYPES`` declares it: ``(type, options)``; a combo's type is its
    list of choices."""

    name: str
    type: str | tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    category: InputCategory = "required"
    bare: bool = False
    """Declared as a 1-tuple ``("IMAGE",)``: rendered without the options dict."""

    def declared(self) -> list[Any]:
        """The ``/object_info`` form: ``["INT", {...}]``, ``[[choices], {...}]``, ``["IMAGE"]``."""
        kind: Any = list(self.type) if isinstance(self.type, tuple) else self.type
        return [kind] if self.bare else [kind, dict(self.options)]

    def config(self) -> list[Any]:
        """The ``input_config`` of validation errors: always ``[type, options]``."""
        kind: Any = list(self.type) if isinstance(self.type, tuple) else self.type
        return [kind, dict(self.options)]


@dataclass(frozen=True)
class NodeClass:
    """A node type: schema, behaviour and how ``/object_info`` shows it."""

    name: str
    inputs: tuple[InputSpec, ...]
    return_types: tuple[str, ...]
    run: NodeFunction
    output_node: bool = False
    display_name: str | None = None
    description: str = ""
    python_module: str = "nodes"
    category: str = "sd"
    hidden: Mapping[str, str] = field(default_factory=dict)
    output_tooltips: tuple[str | None, ...] | None = None
    v3: bool = False
    """Rendered like a ComfyUI "V3" node (extra keys, ``display_name`` may be null)."""
    validate: Callable[[Mapping[str, Any]], bool | str] | None = None
    """The class's ``VALIDATE_INPUTS``: True, or False / a reason for each input it takes."""
    validate_inputs: tuple[str, ...] = ()
    """The inputs ``validate`` takes; their combo lists are not checked (as in ComfyUI)."""

    def input(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def info(self) -> dict[str, Any]:
        """The ``/object_info/{name}`` entry, keys in ComfyUI's order."""
        declared: dict[str, dict[str, Any]] = {}
        for spec in self.inputs:
            declared.setdefault(spec.category, {})[spec.name] = spec.declared()
        if self.hidden:
            declared["hidden"] = dict(self.hidden)
        info: dict[str, Any] = {
            "input": declared,
            "input_order": {category: list(names) for category, names in declared.items()},
            "output": list(self.return_types),
            "output_is_list": [False] * len(self.return_types),
            "output_name": list(self.return_types),
        }
        if self.v3:
            tooltips = self.output_tooltips or (None,) * len(self.return_types)
            info["output_tooltips"] = list(tooltips)
        info.update(
            name=self.name,
            display_name=self.display_name if self.v3 else self.display_name or self.name,
            description=self.description,
            python_module=self.python_module,
            category=self.category,
            output_node=self.output_node,
        )
        if self.v3:
            info.update(deprecated=False, experimental=False, api_node=False)
        elif self.output_tooltips is not None:
            info["output_tooltips"] = list(self.output_tooltips)
        return info
