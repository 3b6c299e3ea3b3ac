"""The rule file schema: what a YAML rule may say, validated with pydantic.

Conditions form a small expression tree (a signal comparison, an attribute test, ``all``,
``any``, ``not``) that :mod:`rules.engine` evaluates itself: a rule file is data, never code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.detect.base import SIGNAL_NAMES
from rules.attributes import ATTRIBUTE_NAMES
from rules.schedule import Schedule

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_THRESHOLD_NAME = r"^[a-z][a-z0-9_]*$"
Action = Literal["open_case", "notify_customer", "notify_support"]
ACTIONS: tuple[Action, ...] = ("open_case", "notify_customer", "notify_support")
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


def parse_duration(text: str | float | int) -> float:
    """'30m', '6h', '2d', '90s' or a number of seconds, to seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration. Fix: write e.g. '90s', '30m', '6h' or '2d'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _known(value: str, names: Mapping[str, str], what: str) -> str:
    if value not in names:
        raise ValueError(f"unknown {what} {value!r}. Fix: use one of: {', '.join(sorted(names))}")
    return value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Threshold = float | Annotated[str, Field(pattern=_THRESHOLD_NAME)]
"""A number, or the name of one of the rule's ``thresholds`` (overridable per model/device)."""


class Comparison(_Node):
    """``signal`` (optionally of one ``metric``) is above and/or below a threshold."""

    signal: str
    metric: str | None = None
    above: Threshold | None = None
    below: Threshold | None = None

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        return _known(value, SIGNAL_NAMES, "signal")

    @model_validator(mode="after")
    def _has_threshold(self) -> Comparison:
        if self.above is None and self.below is None:
            raise ValueError("a comparison needs a threshold. Fix: add 'above' and/or 'below'")
        if self.signal == "value" and self.metric is None:
            raise ValueError("signal 'value' needs a metric. Fix: add 'metric: <name>'")
        return self

    def threshold_names(self) -> set[str]:
        return {t for t in (self.above, self.below) if isinstance(t, str)}


class AttributeTest(_Node):
    """A device or customer attribute (``kind``, ``model``, ``customer.language`` …) is, or is
    one of, the given values."""

    attribute: str
    equals: str | None = None
    in_: list[str] | None = Field(default=None, alias="in", min_length=1)

    @field_validator("attribute")
    @classmethod
    def _known_attribute(cls, value: str) -> str:
        return _known(value, ATTRIBUTE_NAMES, "attribute")

    @field_validator("equals", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # YAML reads `site: 12` as a number; attributes are text.
        return str(value) if isinstance(value, int | float) else value

    @field_validator("in_", mode="before")
    @classmethod
    def _all_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) else v for v in value]
        return value

    @model_validator(mode="after")
    def _one_test(self) -> AttributeTest:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("an attribute test needs one of 'equals' or 'in'. Fix: add one")
        return self

    def accepts(self, value: str | None) -> bool:
        if value is None:
            return False
        return value == self.equals if self.in_ is None else value in self.in_


class AllOf(_Node):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Node):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Node):
    not_: Condition = Field(alias="not")


CONDITION_TAGS = ("compare", "attribute-test")
"""Tags pydantic puts into error locations for leaf nodes; not keys of the YAML document."""


def _node_kind(data: Any) -> str:
    # Pick the node type from its key, so an error speaks of one node type, not of all five.
    if isinstance(data, dict):
        for key in ("all", "any", "not"):
            if key in data:
                return key
        return "attribute-test" if "attribute" in data else "compare"
    kinds: dict[type[BaseModel], str] = {
        AllOf: "all",
        AnyOf: "any",
        NotOf: "not",
        AttributeTest: "attribute-test",
    }
    return kinds.get(type(data), "compare")


Condition = Annotated[
    Annotated[Comparison, Tag("compare")]
    | Annotated[AttributeTest, Tag("attribute-test")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_node_kind),
]


def threshold_names(condition: Condition) -> set[str]:
    """Every named threshold a condition tree refers to."""
    if isinstance(condition, Comparison):
        return condition.threshold_names()
    if isinstance(condition, AllOf | AnyOf):
        children = condition.all if isinstance(condition, AllOf) else condition.any
        return set().union(*(threshold_names(c) for c in children))
    if isinstance(condition, NotOf):
        return threshold_names(condition.not_)
    return set()


class Count(_Node):
    """The condition became true ``times`` separate times within ``within``."""

    times: int = Field(ge=1)
    within: float = Field(gt=0)

    @field_validator("within", mode="before")
    @classmethod
    def _duration(cls, value: str | float | int) -> float:
        return parse_duration(value)


class Override(_Node):
    """Threshold values for one product model or one device (a device's override wins)."""

    model: str | None = None
    device: str | None = None
    thresholds: dict[str, float] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> Override:
        if (self.model is None) == (self.device is None):
            raise ValueError("an override names one target. Fix: give 'model' or 'device'")
        return self


class Escalation(_Node):
    """If the rule is still firing ``after`` its alarm, raise the case to ``severity``."""

    after: float = Field(gt=0)
    severity: Severity

    @field_validator("after", mode="before")
    @classmethod
    def _duration(cls, value: str | float | int) -> float:
        return parse_duration(value)


class Rule(_Node):
    """A named condition that, held for ``for``, opens a case for ``problem``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    problem: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]*$")
    when: Condition
    clear: Condition | None = None
    """Hysteresis: the rule re-arms only when this holds (default: ``when`` no longer holds)."""
    for_: float = Field(default=0.0, alias="for", ge=0)
    count: Count | None = None
    thresholds: dict[Annotated[str, Field(pattern=_THRESHOLD_NAME)], float] = Field(
        default_factory=dict, validate_default=True
    )
    overrides: list[Override] = Field(default_factory=list)
    schedule: Schedule | None = None
    severity: Severity = "warning"
    escalate: list[Escalation] = Field(default_factory=list)
    suggested_action: str = ""
    actions: list[Action] = Field(default_factory=lambda: list(ACTIONS))
    resolve_on_clear: bool = False
    """The case the rule opened resolves itself when the rule clears (a connectivity case once
    the device is back); otherwise it only records that it cleared and waits for support."""

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, value: str | float | int) -> float:
        return parse_duration(value)

    # Field validators (not one model validator) so that an error points at the key to fix;
    # each sees the fields declared above it in ``info.data``.
    @field_validator("thresholds")
    @classmethod
    def _thresholds_defined(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        used: set[str] = set()
        for key in ("when", "clear"):
            if info.data.get(key) is not None:
                used |= threshold_names(info.data[key])
        missing = sorted(used - set(value))
        if missing:
            raise ValueError(
                f"threshold {', '.join(missing)} is used but not defined. Fix: add it under "
                f"'thresholds:' with its default value, e.g. 'thresholds: {{{missing[0]}: 5.0}}'"
            )
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides_known(cls, value: list[Override], info: ValidationInfo) -> list[Override]:
        defined = set(info.data.get("thresholds") or {})
        for override in value:
            unknown = sorted(set(override.thresholds) - defined)
            if unknown:
                raise ValueError(
                    f"override for {override.model or override.device} sets unknown threshold "
                    f"{', '.join(unknown)}. Fix: define it under 'thresholds:' or correct its name"
                )
        return value

    @field_validator("escalate")
    @classmethod
    def _escalation_rises(cls, value: list[Escalation], info: ValidationInfo) -> list[Escalation]:
        rank, after = SEVERITY_RANK[info.data.get("severity", "warning")], 0.0
        for step in value:
            if SEVERITY_RANK[step.severity] <= rank or step.after <= after:
                raise ValueError(
                    "escalation steps must raise the severity, later each time. Fix: order "
                    "'escalate' by 'after' with severities above the rule's (info < warning < "
                    "critical)"
                )
            rank, after = SEVERITY_RANK[step.severity], step.after
        return value

    def thresholds_for(self, model: str, device_id: str) -> dict[str, float]:
        """The rule's thresholds for one device: defaults, then its model's, then its own."""
        values = dict(self.thresholds)
        for override in sorted(self.overrides, key=lambda o: o.device is not None):
            target, value = (
                (override.device, device_id)
                if override.device is not None
                else (override.model, model)
            )
            if target == value:
                values.update(override.thresholds)
        return values


class RuleFile(_Node):
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleFile:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"rule names must be unique; repeated: {', '.join(duplicates)}. "
                "Fix: rename one of each"
            )
        return self


AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
Rule.model_rebuild()
RuleFile.model_rebuild()
