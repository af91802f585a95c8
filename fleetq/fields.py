"""Settings that describe themselves: each option is declared once, in its dataclass.

A field made with :func:`setting` carries its help text and how it is given: a command-line flag,
a TOML key, an environment variable. Parsers, TOML readers and the documentation table are derived
from that one declaration (:func:`options_of`), so an option cannot be documented in one place
and forgotten in another::

    @dataclass(frozen=True)
    class PullerOptions:
        claim_block_s: float = setting(5.0, "how long an idle puller blocks", parse=seconds)

    options_of(PullerOptions)[0].flag      # "--claim-block-s"
    options_of(PullerOptions)[0].toml      # "claim_block_s"
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from fleetq.errors import InvalidArgument

_KEY = "fleetq.option"


@dataclass(frozen=True)
class Option:
    """How one settings field is given and documented (read with :func:`options_of`)."""

    name: str
    help: str
    #: ``--name-of-field`` by default; None: no flag.
    flag: str | None
    #: The TOML key, dotted for a table (``gpus.simulate``); None: not in TOML.
    toml: str | None
    #: The environment variable; None: none.
    env: str | None
    metavar: str | None
    #: Text to value (a flag, a variable, a TOML scalar); raises ``ArgumentTypeError``.
    parse: Callable[[str], Any] | None
    #: How the default reads in help and docs.
    default_text: str
    #: The flag may be repeated (``--label a=b --label c=d``).
    repeat: bool = False

    def from_text(self, raw: str, source: str) -> Any:
        """``raw`` parsed as this option; ``source`` names where it came from, for errors."""
        if self.parse is None:
            return raw
        try:
            return self.parse(raw)
        except (argparse.ArgumentTypeError, ValueError, InvalidArgument) as e:
            raise InvalidArgument(f"{source}: {e}") from e

    def from_toml(self, value: Any, source: str) -> Any:
        """A TOML value: a bool for a bool option, else a scalar (a list joins with commas,
        as on the command line) checked by the same parser as the flag."""
        wrong = InvalidArgument(f"{source}: {value!r:.60} is the wrong type")
        if (self.parse is bool_text) != isinstance(value, bool):
            raise wrong
        if isinstance(value, bool):
            return value
        if self.parse is None:
            if not isinstance(value, str):
                raise wrong
            return value
        if isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
            return self.from_text(",".join(str(v) for v in value), source)
        if isinstance(value, (int, float, str)):
            return self.from_text(str(value), source)
        raise wrong


def bool_text(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) for a variable or a flag value."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {raw!r:.40}")


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | bool = True,
    toml: str | bool = True,
    env: str | bool = False,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    default_text: str | None = None,
    repeat: bool = False,
    default_factory: Any = MISSING,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A dataclass field that documents itself; see the module docstring.

    ``flag``/``toml``/``env``: True derives the name from the field's (``--field-name``,
    ``field_name``, ``FLEETQ_FIELD_NAME``), False leaves it out, a string names it.
    ``parse`` turns text (a flag, a variable, a TOML scalar) into the value.
    """
    if not help:
        raise TypeError("every setting needs its help text")
    spec = {"help": help, "flag": flag, "toml": toml, "env": env, "metavar": metavar,
            "parse": parse, "default_text": default_text, "repeat": repeat}  # fmt: skip
    kwargs: dict[str, Any] = {"metadata": {_KEY: spec}, "repr": repr, "compare": compare}
    if default is not MISSING:
        kwargs["default"] = default
    if default_factory is not MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


def options_of(cls: type) -> list[Option]:
    """The options of a settings dataclass, in field order (fields without one are skipped)."""
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_KEY)
        if spec is None:
            continue
        flag, toml = spec["flag"], spec["toml"]
        if spec["default_text"] is not None:
            shown = spec["default_text"]
        elif f.default is not MISSING:
            shown = "-" if f.default is None else str(f.default)
        else:
            shown = "(required)"
        found.append(
            Option(
                name=f.name,
                help=spec["help"],
                flag=("--" + f.name.replace("_", "-")) if flag is True else (flag or None),
                toml=f.name if toml is True else (toml or None),
                env=("FLEETQ_" + f.name.upper()) if spec["env"] is True else (spec["env"] or None),
                metavar=spec["metavar"],
                parse=spec["parse"],
                default_text=shown,
                repeat=spec["repeat"],
            )
        )
    return found


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per option of ``cls`` that has one; its value lands under the field's name
    (None when not given, so a lower layer shows through)."""
    for option in options_of(cls):
        if option.flag is None:
            continue
        shown = "" if option.default_text in ("-", "(required)") else option.default_text
        if option.env:
            shown = f"${option.env} or {shown}"
        default = f" (default {shown})" if shown else ""
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar,
            action="append" if option.repeat else "store",
            default=None,
            help=option.help + default,
            type=str if option.parse is None else _argparse_type(option.parse),
        )


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """``data["a"]["b"]`` for ``a.b``; None where any part is missing."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse reports only ``ArgumentTypeError``/``ValueError``; map ours to it."""

    def typed(raw: str) -> Any:
        try:
            return parse(raw)
        except InvalidArgument as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    typed.__name__ = getattr(parse, "__name__", "value")
    return typed
