"""Hot reload: notice a changed rules directory and load it, keeping the old rules if broken."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from monitor.metrics import RULE_RELOADS
from rules.loader import RuleFileError, load_rules
from rules.model import Rule

log = logging.getLogger(__name__)

_Snapshot = tuple[tuple[str, str], ...]


class RuleWatcher:
    """Polls ``directory`` for rule files that were added, removed or changed.

    Changes are found by content digest: rule files are small, and unlike mtimes this sees
    two quick edits within one timestamp tick, works on every file system, and ignores a
    mere ``touch``.
    """

    def __init__(self, directory: Path, rules: list[Rule]) -> None:
        self.directory = directory
        self.rules = rules
        self._seen = _snapshot(directory)

    def poll(self) -> list[Rule] | None:
        """The new rules if the directory changed and loads cleanly, else ``None``.

        A directory that fails to load is reported once per change (log line and
        ``monitor_rules_reloads_total{outcome="rejected"}``) and the current rules stay.
        """
        snapshot = _snapshot(self.directory)
        if snapshot == self._seen:
            return None
        self._seen = snapshot
        try:
            rules = load_rules(self.directory)
        except (RuleFileError, OSError, UnicodeDecodeError) as exc:
            RULE_RELOADS.labels("rejected").inc()
            log.error(
                "rule reload refused; the previous rules keep running",
                extra={"dir": str(self.directory), "error": str(exc)},
            )
            return None
        RULE_RELOADS.labels("applied").inc()
        log.info(
            "rules reloaded",
            extra={"dir": str(self.directory), "rules": [rule.name for rule in rules]},
        )
        self.rules = rules
        return rules


def _snapshot(directory: Path) -> _Snapshot:
    try:
        files = sorted(directory.glob("*.y*ml"))
        return tuple((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files)
    except OSError:
        return ()
