"""Rules inside the daemon's pipeline: attributes from the database, escalation to the case."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlmodel import Session, select

from monitor.cases.lifecycle import act
from monitor.config import DatabaseSettings, Settings
from monitor.ingest import RawMessage
from monitor.pipeline import Pipeline
from monitor.store import Case, CaseEvent, open_database
from monitor.store.manifest import import_manifest
from rules.model import RuleFile

START = time.time() - 86400


def pipeline_with(url: str, tmp_path: Path, rules: list[dict[str, object]]) -> Pipeline:
    manifest = tmp_path / "devices.csv"
    manifest.write_text(
        "device_id,kind,model,customer_id,language,timezone\n"
        "berlin,water_pump,WP-200,c-de,de,Europe/Berlin\n"
        "london,water_pump,WP-200,c-en,en,Europe/London\n"
    )
    engine = open_database(url)
    import_manifest(engine, manifest)
    settings = Settings(database=DatabaseSettings(url=url))
    parsed = list(RuleFile.model_validate({"rules": rules}).rules)
    return Pipeline(settings, engine, parsed, notify=False)


def readings(device: str, values: list[float], start: float = START) -> list[RawMessage]:
    return [
        RawMessage(
            f"devices/{device}/telemetry",
            json.dumps({"ts": start + i * 300, "metrics": {"pressure_bar": v}}).encode(),
            0.0,
        )
        for i, v in enumerate(values)
    ]


def cases(url: str) -> list[Case]:
    with Session(open_database(url)) as session:
        return list(session.exec(select(Case)))


HIGH = {"signal": "value", "metric": "pressure_bar", "above": 5}
HIGH_RULE = {"name": "pressure-high", "problem": "pressure", "when": HIGH}


def test_rule_on_customer_language_uses_the_device_manifest(
    sqlite_url: str, tmp_path: Path
) -> None:
    rule = {
        "name": "german-pressure",
        "problem": "pressure",
        "when": {"all": [HIGH, {"attribute": "customer.language", "equals": "de"}]},
    }
    pipeline = pipeline_with(sqlite_url, tmp_path, [rule])
    pipeline.process(readings("berlin", [6.0]) + readings("london", [6.0]))
    assert [c.device_id for c in cases(sqlite_url)] == ["berlin"]


def test_persisting_condition_escalates_the_open_case(sqlite_url: str, tmp_path: Path) -> None:
    rule = {
        "name": "pressure-high",
        "problem": "pressure",
        "when": HIGH,
        "severity": "info",
        "escalate": [
            {"after": "30m", "severity": "warning"},
            {"after": "1h", "severity": "critical"},
        ],
    }
    pipeline = pipeline_with(sqlite_url, tmp_path, [rule])
    pipeline.process(readings("berlin", [6.0] * 14))
    (case,) = cases(sqlite_url)
    assert case.severity == "critical"
    with Session(open_database(sqlite_url)) as session:
        events = session.exec(select(CaseEvent).where(CaseEvent.kind == "escalated"))
        assert [(e.detail["from"], e.detail["to"]) for e in events] == [
            ("info", "warning"),
            ("warning", "critical"),
        ]


def test_rule_progress_survives_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    rule = {"name": "pressure-high", "problem": "pressure", "when": HIGH, "for": "1h"}
    first = pipeline_with(sqlite_url, tmp_path, [rule])
    messages = readings("berlin", [6.0] * 14)
    first.process(messages[:8])
    first.checkpoint()
    assert cases(sqlite_url) == []
    second = pipeline_with(sqlite_url, tmp_path, [rule])
    second.process(messages[8:])
    (case,) = cases(sqlite_url)
    assert case.evidence["since"] == START
    assert case.opened_at == START + 12 * 300


def test_false_alarm_makes_detection_learn_the_device_as_normal(
    sqlite_url: str, tmp_path: Path
) -> None:
    pipeline = pipeline_with(sqlite_url, tmp_path, [{**HIGH_RULE}])
    healthy = [3.0 + 0.1 * ((i * 7) % 5 - 2) for i in range(1000)]
    values = [*healthy, *[6.0] * 60, *[6.0] * 12]
    history = readings("berlin", values, start=time.time() - 300 * len(values) - 600)
    pipeline.process(history[:1060])
    (case,) = cases(sqlite_url)

    def deviation(messages: list[RawMessage]) -> float:
        work = pipeline.compute(messages)
        pipeline.commit(work)
        return max(s.value("deviation", "pressure_bar") or 0.0 for s in work.signals)

    assert deviation(history[1060:1066]) > 2.0  # the device is far from what it learned
    with Session(open_database(sqlite_url)) as session:
        act(session, session.get(Case, case.id), "false-alarm", actor="agent@support", at=START)
        session.commit()

    assert pipeline.learn_from_feedback() == 1
    # Support judged 6 bar healthy for this pump: its baseline re-centres there.
    assert deviation(history[1066:]) < 1.0
    assert pipeline.learn_from_feedback() == 0
    pipeline.checkpoint()
    # After a restart the same judgement is not applied a second time.
    restarted = pipeline_with(sqlite_url, tmp_path, [{**HIGH_RULE}])
    assert restarted.learn_from_feedback() == 0


def test_a_repair_makes_detection_learn_the_device_afresh(sqlite_url: str, tmp_path: Path) -> None:
    pipeline = pipeline_with(sqlite_url, tmp_path, [{**HIGH_RULE}])
    healthy = [3.0 + 0.1 * ((i * 7) % 5 - 2) for i in range(1000)]
    # A new part after the repair: healthy, a little higher than the old one.
    repaired = [3.8 + 0.1 * ((i * 7) % 5 - 2) for i in range(24)]
    values = [*healthy, *[6.0] * 72, *repaired]
    history = readings("berlin", values, start=time.time() - 300 * len(values) - 600)
    pipeline.process(history[:1072])
    (case,) = cases(sqlite_url)
    with Session(open_database(sqlite_url)) as session:
        act(session, session.get(Case, case.id), "resolve", actor="technician", at=START)
        session.commit()

    assert pipeline.learn_from_feedback() == 1
    work = pipeline.compute(history[1072:])
    pipeline.commit(work)
    # Learned afresh: the new part's level is not judged against the old one.
    assert max(s.value("deviation", "pressure_bar") or 0.0 for s in work.signals) < 1.0
