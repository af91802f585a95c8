"""``validate_prompt`` as ComfyUI 0.3.64 does it (``execution.py``), error bodies included.

The structure follows the original closely on purpose: which node an error is reported on,
the ``dependent_outputs`` bookkeeping, the ``details`` string and the in-place coercion of
widget values (``"64"`` becomes ``64`` in the queued prompt) all fall out of it.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.sim.comfyui.schema import InputSpec, NodeClass

Reason = dict[str, Any]
Validated = dict[str, tuple[bool, list[Reason], str]]


class MalformedPrompt(Exception):
    """The body is so wrong that the real server crashes with a 500 (``prompt`` is a list)."""


@dataclass
class ValidationResult:
    """The ``(valid, error, good_outputs, node_errors)`` tuple of ComfyUI."""

    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def full_type_name(kind: type) -> str:
    """``KeyError`` for builtins, ``module.Name`` otherwise (ComfyUI's ``full_type_name``)."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _whole_prompt_error(kind: str, message: str, details: str = "") -> ValidationResult:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return ValidationResult(ok=False, error=error)


def _types_match(received: str, expected: str | tuple[str, ...]) -> bool:
    if isinstance(expected, tuple):
        return received == "COMBO"
    if "*" in (received, expected):
        return True
    return bool(set(received.split(",")) & set(expected.split(",")))


def _coerce(spec: InputSpec, value: Any) -> Any:
    if spec.type == "INT":
        return int(value)
    if spec.type == "FLOAT":
        return float(value)
    if spec.type == "STRING":
        return str(value)
    if spec.type == "BOOLEAN":
        return bool(value)
    return value


class _Validator:
    def __init__(self, prompt: dict[str, Any], classes: Mapping[str, NodeClass]) -> None:
        self.prompt = prompt
        self.classes = classes
        self.validated: Validated = {}

    def validate_inputs(self, node_id: str) -> tuple[bool, list[Reason], str]:
        if node_id in self.validated:
            return self.validated[node_id]
        inputs = self.prompt[node_id]["inputs"]
        node_class = self.classes[self.prompt[node_id]["class_type"]]
        errors: list[Reason] = []
        valid = True
        for spec in node_class.inputs:
            name = spec.name
            if name not in inputs:
                if spec.category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
                continue
            value = inputs[name]
            if isinstance(value, list):
                valid = self._validate_link(node_id, spec, value, errors) and valid
                continue
            error = self._validate_value(inputs, spec, value, name in node_class.validate_inputs)
            if error is not None:
                errors.append(error)
        errors += _custom_validation(node_class, inputs)
        result = (not errors and valid, errors, node_id)
        self.validated[node_id] = result
        return result

    def _validate_link(
        self, node_id: str, spec: InputSpec, value: list[Any], errors: list[Reason]
    ) -> bool:
        name = spec.name
        if len(value) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {
                        "input_name": name,
                        "input_config": spec.config(),
                        "received_value": value,
                    },
                }
            )
            return True
        source_id = value[0]
        # A link to a missing node raises KeyError here, as in ComfyUI; the caller reports it.
        source_class = self.classes[self.prompt[source_id]["class_type"]]
        received_type = source_class.return_types[value[1]]
        if not _types_match(received_type, spec.type):
            details = f"{name}, received_type({received_type}) mismatch input_type({spec.type})"
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": details,
                    "extra_info": {
                        "input_name": name,
                        "input_config": spec.config(),
                        "received_type": received_type,
                        "linked_node": value,
                    },
                }
            )
            return True
        try:
            inner_valid = self.validate_inputs(source_id)[0]
        except Exception as ex:
            self.validated[source_id] = (
                False,
                [
                    {
                        "type": "exception_during_inner_validation",
                        "message": "Exception when validating inner node",
                        "details": str(ex),
                        "extra_info": {
                            "input_name": name,
                            "input_config": spec.config(),
                            "exception_message": str(ex),
                            "exception_type": full_type_name(type(ex)),
                            "traceback": traceback.format_tb(ex.__traceback__),
                            "linked_node": value,
                        },
                    }
                ],
                source_id,
            )
            return False
        return inner_valid

    def _validate_value(
        self, inputs: dict[str, Any], spec: InputSpec, value: Any, custom: bool = False
    ) -> Reason | None:
        name = spec.name
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            value = _coerce(spec, value)
            inputs[name] = value
        except Exception as ex:
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {spec.type} value",
                "details": f"{name}, {value}, {ex}",
                "extra_info": {
                    "input_name": name,
                    "input_config": spec.config(),
                    "received_value": value,
                    "exception_message": str(ex),
                },
            }
        options = spec.options
        if "min" in options and value < options["min"]:
            return self._range_error("value_smaller_than_min", "smaller than min", spec, value)
        if "max" in options and value > options["max"]:
            return self._range_error("value_bigger_than_max", "bigger than max", spec, value)
        if isinstance(spec.type, tuple) and not custom and value not in spec.type:
            choices = list(spec.type)
            # ComfyUI does not echo long lists (thousands of model files).
            listed = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{name}: '{value}' not in {listed}",
                "extra_info": {
                    "input_name": name,
                    "input_config": None if len(choices) > 20 else spec.config(),
                    "received_value": value,
                },
            }
        return None

    @staticmethod
    def _range_error(kind: str, words: str, spec: InputSpec, value: Any) -> Reason:
        bound = spec.options["min" if kind == "value_smaller_than_min" else "max"]
        return {
            "type": kind,
            "message": f"Value {value} {words} of {bound}",
            "details": spec.name,
            "extra_info": {
                "input_name": spec.name,
                "input_config": spec.config(),
                "received_value": value,
            },
        }


def _custom_validation(node_class: NodeClass, inputs: dict[str, Any]) -> list[Reason]:
    """The class's ``VALIDATE_INPUTS`` with the inputs it takes; one error per such input
    when it answers anything but True (``custom_validation_failed``, as ComfyUI reports it)."""
    if node_class.validate is None:
        return []
    taken = {name: inputs[name] for name in node_class.validate_inputs if name in inputs}
    answer = node_class.validate(taken)
    if answer is True:
        return []
    return [
        {
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": name if answer is False else f"{name} - {answer}",
            "extra_info": {"input_name": name},
        }
        for name in taken
    ]


def _find_outputs(
    prompt: dict[str, Any], classes: Mapping[str, NodeClass], targets: list[str] | None
) -> ValidationResult | list[str]:
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict):
            if isinstance(node, (list, str)) and "class_type" not in node:
                node = {}
            else:
                raise MalformedPrompt(f"node {node_id!r} is not an object")
        if "class_type" not in node:
            return _whole_prompt_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        class_type = node["class_type"]
        try:
            node_class = classes.get(class_type)
        except TypeError as ex:  # an unhashable class_type crashes the real server too
            raise MalformedPrompt(f"node {node_id!r} has an unhashable class_type") from ex
        if node_class is None:
            return _whole_prompt_error(
                "invalid_prompt",
                f"Cannot execute because node {class_type} does not exist.",
                f"Node ID '#{node_id}'",
            )
        if node_class.output_node and (targets is None or node_id in targets):
            outputs.append(node_id)
    return outputs


def validate_prompt(
    prompt: Any, classes: Mapping[str, NodeClass], targets: list[str] | None = None
) -> ValidationResult:
    """Validate an API-format graph; coerces widget values in place like ComfyUI.

    Raises ``MalformedPrompt`` where the real server answers 500 (``prompt`` not an object).
    """
    if not isinstance(prompt, dict):
        raise MalformedPrompt("prompt is not an object")
    found = _find_outputs(prompt, classes, targets)
    if isinstance(found, ValidationResult):
        return found
    if not found:
        return _whole_prompt_error("prompt_no_outputs", "Prompt has no outputs")
    validator = _Validator(prompt, classes)
    good_outputs: list[str] = []
    errors: list[tuple[str, list[Reason]]] = []
    node_errors: dict[str, Any] = {}
    for output_id in found:
        try:
            valid, reasons, _ = validator.validate_inputs(output_id)
        except Exception as ex:
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(ex),
                    "extra_info": {
                        "exception_type": full_type_name(type(ex)),
                        "traceback": traceback.format_tb(ex.__traceback__),
                    },
                }
            ]
            validator.validated[output_id] = (False, reasons, output_id)
        if valid:
            good_outputs.append(output_id)
            continue
        if reasons:
            errors.append((output_id, reasons))
        # Every node with errors is reported, with each failed output appended to it.
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if node_valid or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output_id)
    if not good_outputs:
        details = "\n".join(
            f"{reason['message']}: {reason['details']}"
            for _, reasons in errors
            for reason in reasons
        )
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return ValidationResult(ok=False, error=error, node_errors=node_errors)
    return ValidationResult(ok=True, outputs=good_outputs, node_errors=node_errors)
