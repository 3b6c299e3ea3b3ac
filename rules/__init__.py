"""The rules engine: YAML rules over detection signals, and the shipped rule files."""

# First: it decides whether the engine loads compiled or from source.
from monitor import native
from rules.engine import Alarm, Cleared, RuleEngine, holds
from rules.loader import RuleFileError, load_rule_file, load_rules
from rules.model import Rule

__all__ = [
    "Alarm",
    "Cleared",
    "Rule",
    "RuleEngine",
    "RuleFileError",
    "holds",
    "load_rule_file",
    "load_rules",
    "native",
]
