"""Reading rule files from a directory, with errors that name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.model import CONDITION_TAGS, Rule, RuleFile

_FIXES = {
    "extra_forbidden": "Fix: remove this key or correct its spelling (see docs/rules.md).",
    "missing": "Fix: add this key.",
    "literal_error": "Fix: use one of the values listed.",
    "float_parsing": "Fix: write a number.",
    "float_type": "Fix: write a number.",
    "int_parsing": "Fix: write a whole number.",
    "int_type": "Fix: write a whole number.",
    "string_type": "Fix: write text.",
    "string_pattern_mismatch": "Fix: use lower-case letters, digits, '_', '-' or '.'.",
    "list_type": "Fix: write a list ('- item' lines or [a, b]).",
    "dict_type": "Fix: write a mapping ('key: value' lines).",
    "model_type": "Fix: write a mapping ('key: value' lines).",
    "too_short": "Fix: give at least one entry.",
    "greater_than": "Fix: use a larger value.",
    "greater_than_equal": "Fix: use a larger value.",
}


class RuleFileError(Exception):
    """A rule file cannot be used; the message says where and how to fix it."""


def load_rules(directory: Path) -> list[Rule]:
    """Every rule in ``directory/*.yaml`` (sorted by file name), or :class:`RuleFileError`."""
    if not directory.is_dir():
        raise RuleFileError(f"{directory}: no such rules directory. Fix: set rules.dir.")
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.y*ml")):
        for rule in load_rule_file(path):
            if rule.name in seen:
                raise RuleFileError(
                    f"{path}: rule {rule.name!r} is also defined in {seen[rule.name]}. "
                    "Fix: give one of them another name."
                )
            seen[rule.name] = path
            rules.append(rule)
    if not rules:
        raise RuleFileError(f"{directory}: no rules in *.yaml. Fix: add a rule file.")
    return rules


def load_rule_file(path: Path) -> list[Rule]:
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return list(RuleFile.model_validate(data).rules)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _yaml_path(error["loc"])
            line = _line_of(document, loc)
            key = ".".join(str(p) for p in loc) or "<top>"
            problems.append(f"{path}:{line}: key '{key}': {_explain(error)}")
        raise RuleFileError("\n".join(problems)) from exc


def _explain(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if "Fix:" in message:
        return message
    fix = _FIXES.get(str(error["type"]), "Fix: see docs/rules.md for the rule syntax.")
    return f"{message}. {fix}"


_UNION_MEMBERS = ("float", "str", "constrained-str", "function-after[_duration(), float]")


def _yaml_path(loc: tuple[int | str, ...]) -> list[int | str]:
    # pydantic puts the tag of the condition node it chose into the path ('compare', or 'any'
    # right before the 'any' key itself), and the member of a union it tried ('float' …);
    # none is a step in the YAML document.
    path: list[int | str] = []
    for part in loc:
        if part in CONDITION_TAGS or (path and part in ("all", "any", "not") and path[-1] == part):
            continue
        if isinstance(part, str) and part.startswith(_UNION_MEMBERS):
            continue
        path.append(part)
    return path


def _line_of(node: Any, loc: list[int | str]) -> int:
    """1-based line of the deepest YAML node along ``loc`` that exists."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                return line
            line = child.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        node = child
        if node is None:
            break
    return line
