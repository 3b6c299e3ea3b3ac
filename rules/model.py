"""The rule file schema: what a YAML rule may say, validated with pydantic.

Conditions form a small expression tree (a comparison, ``all``, ``any``, ``not``) that
:mod:`rules.engine` evaluates itself: a rule file is data, never code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from monitor.detect.base import SIGNAL_NAMES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
Action = Literal["open_case", "notify_customer", "notify_support"]
ACTIONS: tuple[Action, ...] = ("open_case", "notify_customer", "notify_support")


def parse_duration(text: str | float | int) -> float:
    """'30m', '6h', '2d', '90s' or a number of seconds, to seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. '90s', '30m', '6h' or '2d'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Node):
    """``signal`` (optionally of one ``metric``) is above and/or below a threshold."""

    signal: str
    metric: str | None = None
    above: float | None = None
    below: float | None = None

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if value not in SIGNAL_NAMES:
            known = ", ".join(sorted(SIGNAL_NAMES))
            raise ValueError(f"unknown signal {value!r}; known signals: {known}")
        return value

    @model_validator(mode="after")
    def _has_threshold(self) -> Comparison:
        if self.above is None and self.below is None:
            raise ValueError("a comparison needs 'above' and/or 'below'")
        return self


class AllOf(_Node):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Node):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Node):
    not_: Condition = Field(alias="not")


def _node_kind(data: Any) -> str:
    # Pick the node type from its key, so an error speaks of one node type, not of all four.
    if isinstance(data, dict):
        for key in ("all", "any", "not"):
            if key in data:
                return key
    elif isinstance(data, AllOf):
        return "all"
    elif isinstance(data, AnyOf):
        return "any"
    elif isinstance(data, NotOf):
        return "not"
    return "compare"


Condition = Annotated[
    Annotated[Comparison, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_node_kind),
]


class Rule(_Node):
    """A named condition that, held for ``for``, opens a case for ``problem``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    problem: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]*$")
    when: Condition
    clear: Condition | None = None
    """Hysteresis: the rule re-arms only when this holds (default: ``when`` no longer holds)."""
    for_: float = Field(default=0.0, alias="for", ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    suggested_action: str = ""
    actions: list[Action] = Field(default_factory=lambda: list(ACTIONS))

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, value: str | float | int) -> float:
        return parse_duration(value)


class RuleFile(_Node):
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleFile:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(duplicates)}")
        return self


AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
Rule.model_rebuild()
RuleFile.model_rebuild()
