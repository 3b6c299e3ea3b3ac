"""``monitor backtest``: recorded telemetry through the daemon's pipeline, two CSVs out."""

from __future__ import annotations

import csv
import gc
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlmodel import Session, select
from typer.testing import CliRunner

from monitor.backtest import read_telemetry, run_backtest
from monitor.cli import app
from monitor.config import DatabaseSettings, Settings
from monitor.ingest import ParsedMessage
from monitor.store import Case, CaseEvent, ParkedMessage, open_database
from monitor.store.models import FleetIncident
from rules import load_rules
from simulators.files import write_fleet
from simulators.fleet import build_fleet

runner = CliRunner()
START = 1_790_000_000.0


@pytest.fixture(scope="module")
def fleet_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fleet")
    fleet = build_fleet(seed=11, devices=8, days=8, step=300.0, start=START, fault_share=0.5)
    write_fleet(fleet, directory / "telemetry.csv", truth=directory / "truth.json")
    return directory / "telemetry.csv"


def write_talker_and(path: Path, other: str, days: int, *, away: tuple[float, float]) -> None:
    """Five-minute telemetry of "talker" throughout, and of ``other`` except while away."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "ts", "temp"])
        for i in range(days * 288):
            ts = START + i * 300.0
            writer.writerow(["talker", f"{ts:.0f}", f"{20.0 + (i % 7) * 0.1:.2f}"])
            if not away[0] <= ts < away[1]:
                writer.writerow([other, f"{ts + 1:.0f}", f"{30.0 + (i % 5) * 0.1:.2f}"])


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_backtest_writes_the_contract_csvs_with_one_score_per_input_row(
    fleet_csv: Path, tmp_path: Path
) -> None:
    cases, scores = tmp_path / "cases.csv", tmp_path / "scores.csv"
    result = runner.invoke(
        app, ["backtest", str(fleet_csv), "--out", str(cases), "--scores", str(scores)]
    )
    assert result.exit_code == 0, result.output
    case_rows = read_csv(cases)
    assert case_rows[0] == [
        "device_id", "opened_at", "closed_at", "problem", "rule", "severity",
        "predicted_failure_at",
    ]  # fmt: skip
    score_rows = read_csv(scores)
    assert score_rows[0] == ["device_id", "ts", "score"]
    assert len(score_rows) == len(read_csv(fleet_csv))
    values = [float(r[2]) for r in score_rows[1:]]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values) > 0.0
    shipped = {rule.problem for rule in load_rules(Settings().rules.dir)}
    for row in case_rows[1:]:
        assert float(row[1]) >= START
        assert row[3] in shipped


def test_jsonl_input_gives_the_same_cases_as_the_csv(fleet_csv: Path, tmp_path: Path) -> None:
    rows = read_csv(fleet_csv)
    header = rows[0]
    jsonl = tmp_path / "telemetry.jsonl"
    with jsonl.open("w") as handle:
        for row in rows[1:]:
            metrics = {n: float(v) for n, v in zip(header[2:], row[2:], strict=True) if v}
            payload = {"device_id": row[0], "ts": float(row[1]), "metrics": metrics}
            handle.write(json.dumps(payload) + "\n")
    from_csv, from_jsonl = tmp_path / "a.csv", tmp_path / "b.csv"
    assert runner.invoke(app, ["backtest", str(fleet_csv), "--out", str(from_csv)]).exit_code == 0
    assert runner.invoke(app, ["backtest", str(jsonl), "--out", str(from_jsonl)]).exit_code == 0
    assert read_csv(from_csv) == read_csv(from_jsonl)


def test_bad_telemetry_file_names_the_line_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("device,time,a\nd1,1,2\n")
    result = runner.invoke(app, ["backtest", str(bad), "--out", str(tmp_path / "c.csv")])
    assert result.exit_code == 2
    assert f"{bad}:1: header must start with 'device_id,ts'" in " ".join(result.output.split())


def test_a_device_that_falls_silent_opens_a_connectivity_case_on_event_time(
    tmp_path: Path,
) -> None:
    telemetry = tmp_path / "telemetry.csv"
    write_talker_and(telemetry, "quitter", 3, away=(START + 86400, math.inf))
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/db.sqlite"))
    cases = tmp_path / "cases.csv"
    run_backtest(telemetry, settings, load_rules(settings.rules.dir), cases)
    rows = read_csv(cases)[1:]
    assert [(r[0], r[3]) for r in rows] == [("quitter", "connectivity")]
    # Not before 144 of its five-minute intervals (12 h) had passed in the file's own time,
    # and by the end of the file (the backtest checks silence once per batch of rows).
    assert START + 1.5 * 86400 <= float(rows[0][1]) <= START + 3 * 86400


def test_alarms_carry_the_evidence_series_of_their_device(fleet_csv: Path, tmp_path: Path) -> None:
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/db.sqlite"))
    run_backtest(fleet_csv, settings, load_rules(settings.rules.dir), tmp_path / "cases.csv")
    with Session(open_database(settings.database.url)) as session:
        cases = list(session.exec(select(Case)))
    assert cases
    for case in cases:
        series = case.evidence["series"]
        assert series
        for points in series.values():
            assert 0 < len(points) <= 72
            assert all(len(p) == 5 for p in points)


def test_a_fleet_wide_shift_in_a_file_without_models_is_one_incident_not_a_case_each(
    tmp_path: Path,
) -> None:
    # Seven devices report the same metrics and no model; six of them shift together (a
    # heat wave). Devices reporting the same metrics are one another's peers, so the shift is
    # a fleet incident for engineering, not a case per device.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "hot.yaml").write_text(
        "rules:\n  - name: running-hot\n    problem: overheating\n"
        "    when: {metric: temp_c, signal: value, above: 60}\n    for: 30m\n"
        "    severity: warning\n    actions: [open_case]\n"
    )
    telemetry = tmp_path / "telemetry.csv"
    rng = random.Random(3)
    with telemetry.open("w") as handle:
        handle.write("device_id,ts,temp_c\n")
        for i in range(int(2 * 86400 / 300)):
            ts = START + i * 300
            for d in range(7):
                hot = d < 6 and ts >= START + 86400
                handle.write(f"d{d},{ts},{(72.0 if hot else 40.0) + rng.gauss(0, 0.5):.2f}\n")
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/bt.db"))
    run_backtest(telemetry, settings, load_rules(rules_dir), tmp_path / "cases.csv")
    assert read_csv(tmp_path / "cases.csv")[1:] == []
    with Session(open_database(settings.database.url)) as session:
        [incident] = session.exec(select(FleetIncident)).all()
    assert incident.model == "metrics:temp_c"
    assert sorted(incident.devices) == [f"d{d}" for d in range(6)]


def test_a_replay_leaves_the_live_latency_histograms_alone(fleet_csv: Path, tmp_path: Path) -> None:
    def observed() -> float:
        return sum(
            REGISTRY.get_sample_value(f"{name}_count") or 0.0
            for name in ("monitor_event_lag_seconds", "monitor_processing_latency_seconds")
        )

    before = observed()
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/replay.db"))
    result = run_backtest(fleet_csv, settings, load_rules(settings.rules.dir), tmp_path / "c.csv")
    assert result.accepted > 0
    assert observed() == before


def test_a_replay_leaves_nothing_frozen_from_the_collector(fleet_csv: Path, tmp_path: Path) -> None:
    # The replay freezes its growing state to keep full passes short; a caller that goes on
    # (the evaluation bench replays seed after seed) must get it back collectable.
    gc.unfreeze()
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/replay.db"))
    run_backtest(fleet_csv, settings, load_rules(settings.rules.dir), tmp_path / "c.csv")
    assert gc.get_freeze_count() == 0


def test_wide_csv_cells_become_the_payload_the_device_would_send(tmp_path: Path) -> None:
    telemetry = tmp_path / "telemetry.csv"
    telemetry.write_text('device_id,ts,flow,"odd ""name"""\np1,1790000000,-0.0,\np1,2e9,nan,x\n')
    rows = [row for batch in read_telemetry(telemetry, "devices") for row in batch]
    bodies = [json.loads(message.raw().payload) for _, _, message in rows]
    assert bodies[0] == {"ts": 1790000000.0, "metrics": {"flow": -0.0}}
    assert bodies[1]["metrics"]['odd "name"'] == "x"  # refused by the decoder, as live
    assert bodies[1]["metrics"]["flow"] != bodies[1]["metrics"]["flow"]  # NaN


def test_a_broken_relationship_between_metrics_raises_the_score(tmp_path: Path) -> None:
    # Current follows flow, then rises as flow falls: each metric stays in its own band, so
    # only the relationship tells, and the score must say so.
    rng = random.Random(6)
    telemetry = tmp_path / "pair.csv"
    lines = ["device_id,ts,flow,current"]
    for i in range(6 * 288):
        ts = START + i * 300.0
        load = rng.gauss(0, 1.0)
        sign = -1.0 if i >= 5 * 288 else 1.0
        current = 5.0 + 0.3 * sign * load + rng.gauss(0, 0.03)
        lines.append(f"p1,{ts:.0f},{40.0 + 3.0 * load:.4f},{current:.4f}")
    telemetry.write_text("\n".join(lines) + "\n")
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/bt.db"))
    scores_csv = tmp_path / "scores.csv"
    run_backtest(
        telemetry, settings, load_rules(settings.rules.dir), tmp_path / "c.csv", scores_csv
    )
    scores = [(float(ts), float(s)) for _, ts, s in read_csv(scores_csv)[1:]]
    healthy = [s for ts, s in scores if START + 4 * 86400 < ts < START + 5 * 86400]
    broken = sorted(s for ts, s in scores if ts > START + 5.5 * 86400)
    assert max(healthy) < 0.2
    assert broken[len(broken) // 2] > 0.3


def test_a_row_with_a_non_numeric_cell_is_refused_and_parked_as_the_daemon_would(
    tmp_path: Path,
) -> None:
    telemetry = tmp_path / "telemetry.csv"
    telemetry.write_text(
        f"device_id,ts,flow,temp\np1,{START:.0f},1.5,20\np1,{START + 300:.0f},1.5,hot\n"
    )
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/bt.db"))
    result = run_backtest(telemetry, settings, [], tmp_path / "c.csv")
    assert (result.rows, result.accepted, result.rejected) == (2, 1, 1)
    with Session(open_database(settings.database.url)) as session:
        [parked] = session.exec(select(ParkedMessage)).all()
    assert (parked.reason, parked.detail) == ("non_numeric_metric", "metric 'temp'='hot'")
    assert parked.topic == "devices/p1/telemetry"
    assert parked.payload == (
        b'{"ts": %.1f, "metrics": {"flow": 1.5, "temp": "hot"}}' % (START + 300)
    )


_CELLS = st.text(max_size=30) | st.floats().map(repr) | st.sampled_from(["", "inf", "-nan", "1_0"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_CELLS, _CELLS, _CELLS), min_size=1, max_size=5))
def test_a_rows_size_bound_is_never_below_its_payload(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, ...]]
) -> None:
    # The decoder writes a row's JSON to check the size limit only when the bound says it
    # might be over: a bound below the payload would let an oversized row through.
    telemetry = tmp_path_factory.mktemp("bound") / "telemetry.csv"
    with telemetry.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "ts", "a", "b \U0001f600"])
        writer.writerows(("d1", *row) for row in rows)
    for batch in read_telemetry(telemetry, "devices"):
        for _, _, message in batch:
            assert isinstance(message, ParsedMessage)
            assert message.size_bound >= len(message.raw().payload)


_LITERALS = (
    st.floats().map(json.dumps)
    | st.integers().map(str)
    | st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False))
    | st.sampled_from(["1e5", "1E400", "-0", "1e15", "0.1e-3", "[1,2]", "{}", "null", "true"])
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=10), _LITERALS), max_size=5))
def test_a_jsonl_lines_size_bound_is_never_below_its_payload(
    tmp_path_factory: pytest.TempPathFactory, metrics: list[tuple[str, str]]
) -> None:
    # A JSONL line is handed over parsed, as a CSV row is; written compactly, its payload
    # re-serialises longer ("1e5" as "100000.0", a character outside the BMP as two escapes).
    body = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in metrics)
    line = '{"device_id":"d1","ts":1,"metrics":{' + body + "}}"
    telemetry = tmp_path_factory.mktemp("bound") / "telemetry.jsonl"
    telemetry.write_text(line + "\n", encoding="utf-8")
    for batch in read_telemetry(telemetry, "devices"):
        for _, _, message in batch:
            assert isinstance(message, ParsedMessage)
            assert message.size_bound >= len(message.raw().payload)


def test_a_case_records_when_the_rule_that_opened_it_cleared(tmp_path: Path) -> None:
    # A valve's pressure runs high for two hours, then back to normal: the case opened by
    # the rule stays open for support, and its history says when the condition cleared.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "pressure.yaml").write_text(
        "rules:\n  - name: pressure-high\n    problem: overpressure\n"
        "    when: {metric: pressure_bar, signal: value, above: 6}\n"
        "    clear: {metric: pressure_bar, signal: value, below: 5}\n    for: 15m\n"
        "    severity: warning\n    actions: [open_case]\n"
    )
    telemetry = tmp_path / "telemetry.csv"
    high = (START + 3600, START + 3 * 3600)
    with telemetry.open("w") as handle:
        handle.write("device_id,ts,pressure_bar\n")
        for i in range(6 * 12):
            ts = START + i * 300
            handle.write(f"valve,{ts:.0f},{7.0 if high[0] <= ts < high[1] else 4.0}\n")
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/bt.db"))
    run_backtest(telemetry, settings, load_rules(rules_dir), tmp_path / "cases.csv")
    with Session(open_database(settings.database.url)) as session:
        [case] = session.exec(select(Case)).all()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
    assert (case.status, case.opened_at) == ("open", high[0] + 900)
    assert [e.kind for e in events] == ["opened", "condition_cleared"]
    assert events[1].detail == {"rule": "pressure-high", "at": high[1]}


def test_a_connectivity_case_resolves_itself_when_the_device_is_heard_from_again(
    tmp_path: Path,
) -> None:
    telemetry = tmp_path / "telemetry.csv"
    # Away a week: silence is checked once per batch of rows (1000 rows: three and a half
    # days of the other device alone), and a device with a row in the batch is not silent.
    away = (START + 86400, START + 8 * 86400)
    write_talker_and(telemetry, "roamer", 9, away=away)
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path}/db.sqlite"))
    run_backtest(telemetry, settings, load_rules(settings.rules.dir), tmp_path / "cases.csv")
    with Session(open_database(settings.database.url)) as session:
        [case] = session.exec(select(Case)).all()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
    assert (case.device_id, case.problem, case.status) == ("roamer", "connectivity", "resolved")
    assert [e.kind for e in events] == ["opened", "condition_cleared", "resolved"]
    assert events[1].detail["at"] == away[1] + 1
    assert events[2].actor == "monitor"


def test_the_fleets_payload_file_names_each_model_and_replays_every_row(tmp_path: Path) -> None:
    fleet = build_fleet(seed=11, devices=8, days=2, step=300.0, start=START)
    payloads, wide = tmp_path / "telemetry.jsonl", tmp_path / "telemetry.csv"
    written = write_fleet(fleet, payloads)
    assert write_fleet(fleet, wide) == written
    lines = [json.loads(line) for line in payloads.read_text().splitlines()]
    assert len(lines) == written
    assert {line["device_id"]: line["model"] for line in lines} == {
        d.device_id: d.model for d in fleet.devices
    }
    scores = {}
    for source in (payloads, wide):
        out = tmp_path / f"scores-{source.suffix[1:]}.csv"
        args = ["backtest", str(source), "--out", str(tmp_path / "c.csv"), "--scores", str(out)]
        assert runner.invoke(app, args).exit_code == 0
        scores[source.suffix] = read_csv(out)
    assert len(scores[".jsonl"]) == len(scores[".csv"]) == written + 1
