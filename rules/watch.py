"""Hot reload: notice a changed rules directory and load it, keeping the old rules if broken."""

from __future__ import annotations

import logging
from pathlib import Path

from monitor.metrics import RULE_RELOADS
from rules.loader import RuleFileError, load_rules
from rules.model import Rule

log = logging.getLogger(__name__)

_Snapshot = tuple[tuple[str, int, int], ...]


class RuleWatcher:
    """Polls ``directory`` for rule files that were added, removed or changed (by mtime and
    size: no extra library, and it works on every file system, network ones included)."""

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
        return tuple((p.name, (s := p.stat()).st_mtime_ns, s.st_size) for p in files)
    except OSError:
        return ()
