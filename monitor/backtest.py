"""Backtest: the daemon's pipeline over recorded telemetry, no broker needed.

Rows become the messages the broker would deliver, so ingest validation, detection, rules and
case dedup run exactly as in the daemon, on the messages' own timestamps. A CSV row is handed
over as the object its payload would decode to: the decoder judges that object as it judges a
decoded payload, and writing JSON only to read it back cost about 5 % of a backtest. Cases
are opened in a database (a temporary SQLite one unless the configuration names one) without
queueing any notification.

Input: a wide CSV with header ``device_id,ts,<metric>,…`` (an empty cell: the metric was absent
from that message) or JSON Lines of the device payload plus ``device_id``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.config import Settings
from monitor.detect import SignalSet
from monitor.heap import QuietCollector
from monitor.ingest import Message, ParsedMessage
from monitor.pipeline import Pipeline
from monitor.store import Case, open_database
from rules import Rule

CASES_HEADER = (
    "device_id",
    "opened_at",
    "closed_at",
    "problem",
    "rule",
    "severity",
    "predicted_failure_at",
)
SCORES_HEADER = ("device_id", "ts", "score")
_BATCH = 1000
_SCORE_HALF = 10.0
"""The deviation that maps to a score of 0.5: the shipped generic rule's threshold."""


class TelemetryFileError(Exception):
    """The telemetry file cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True, slots=True)
class BacktestResult:
    rows: int
    accepted: int
    rejected: int
    cases: int
    seconds: float


def run_backtest(
    telemetry: Path,
    settings: Settings,
    rules: list[Rule],
    cases_out: Path,
    scores_out: Path | None = None,
) -> BacktestResult:
    """Replay ``telemetry`` through the pipeline; write the cases (and scores) CSVs."""
    started = time.perf_counter()
    engine = open_database(settings.database.url, settings.database.migrate)
    pipeline = Pipeline(settings, engine, rules, notify=False, event_clock=True)
    prefix = settings.mqtt.topic_prefix
    rows = accepted = 0
    collector = QuietCollector()
    with contextlib.ExitStack() as stack:
        stack.callback(collector.release)
        scores = None
        if scores_out is not None:
            scores = csv.writer(stack.enter_context(scores_out.open("w", newline="")))
            scores.writerow(SCORES_HEADER)
        last_score: dict[str, float] = {}
        for batch in _batches(_messages(telemetry, prefix)):
            work = pipeline.compute([message for _, _, message in batch])
            pipeline.commit(work)
            collector.between_batches()
            rows += len(batch)
            accepted += len(work.admitted.telemetry)
            if scores is None:
                continue
            by_source = {
                id(t.source): s for t, s in zip(work.admitted.telemetry, work.signals, strict=True)
            }
            for device_id, ts, message in batch:
                signals = by_source.get(id(message))
                if signals is not None:
                    last_score[device_id] = _score(_strongest(signals))
                scores.writerow((device_id, ts, f"{last_score.get(device_id, 0.0):.4f}"))
    pipeline.checkpoint()
    opened = _write_cases(engine, cases_out)
    return BacktestResult(rows, accepted, rows - accepted, opened, time.perf_counter() - started)


def _strongest(signals: SignalSet) -> float:
    """How far from healthy the device is, in robust standard units: its most deviating
    metric, or the relationship between its metrics, whichever is further off (a valve
    closing moves flow and pressure apart before either leaves its own band)."""
    anomaly = signals.extra.get("anomaly")
    deviation = signals.deviation
    return anomaly if anomaly is not None and anomaly > deviation else deviation


def _score(deviation: float) -> float:
    # Monotone in the deviation, 0 when on baseline, 0.5 at the shipped rule's threshold.
    return deviation / (deviation + _SCORE_HALF) if deviation > 0 else 0.0


def _write_cases(engine: Engine, path: Path) -> int:
    with Session(engine) as session:
        cases = list(session.exec(select(Case).order_by(col(Case.opened_at), col(Case.id))))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CASES_HEADER)
        for case in cases:
            writer.writerow(
                (
                    case.device_id,
                    _epoch(case.opened_at),
                    _epoch(case.closed_at),
                    case.problem,
                    case.rule,
                    case.severity,
                    _epoch(case.predicted_failure_at),
                )
            )
    return len(cases)


def _epoch(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


Row = tuple[str, str, Message]


def read_telemetry(path: Path, prefix: str) -> Iterator[list[Row]]:
    """A telemetry file's rows as ``(device_id, ts, message)`` batches, as the broker would
    deliver them; :class:`TelemetryFileError` names the line that cannot be read."""
    return _batches(_messages(path, prefix))


def _batches(rows: Iterator[Row]) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _messages(path: Path, prefix: str) -> Iterator[Row]:
    if not path.is_file():
        raise TelemetryFileError(f"{path}: no such file. Fix: pass an existing CSV or JSONL file.")
    with path.open(encoding="utf-8", newline="") as handle:
        first = handle.read(1)
        handle.seek(0)
        if first == "{":
            yield from _jsonl(path, handle, prefix)
        else:
            yield from _wide_csv(path, handle, prefix)


def _wide_csv(path: Path, handle: IO[str], prefix: str) -> Iterator[Row]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None or header[:2] != ["device_id", "ts"]:
        raise TelemetryFileError(
            f"{path}:1: header must start with 'device_id,ts' (got {header!r}). "
            "Fix: write 'device_id,ts,<metric>,…' as the first line."
        )
    names = header[2:]
    # Each cell's JSON is at most 24 characters for a number, 12 a character plus quotes for
    # text (a character outside the BMP is escaped as two \uXXXX): with the keys and
    # punctuation, a bound on the payload's length that costs one sum a row.
    head = len('{"ts": , "metrics": {}}') + 24 * (len(header) - 1)
    head += sum(len(json.dumps(name)) + len(": , ") for name in names)
    for line, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise TelemetryFileError(
                f"{path}:{line}: {len(cells)} cells, the header has {len(header)}. "
                "Fix: one cell per column (empty when a metric is absent)."
            )
        device_id, ts = cells[0], cells[1]
        metrics = {name: _value(v) for name, v in zip(names, cells[2:], strict=True) if v}
        body = {"ts": _value(ts), "metrics": metrics}
        size_bound = head + 12 * sum(map(len, cells))
        topic = f"{prefix}/{device_id}/telemetry"
        yield device_id, ts, ParsedMessage(topic, body, size_bound)


def _jsonl(path: Path, handle: IO[str], prefix: str) -> Iterator[Row]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            body = json.loads(text)
            device_id = str(body.pop("device_id"))
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
            raise TelemetryFileError(
                f"{path}:{line}: not a JSON object with a device_id ({exc}). "
                'Fix: one device payload plus "device_id" per line.'
            ) from exc
        # Handed over as parsed, as a CSV row is: writing the JSON again only for the decoder
        # to read it back was a tenth of a backtest. A character of the line re-serialises
        # to at most 12 (a character outside the BMP as two \uXXXX escapes; "1e5" as
        # "100000.0"), which bounds the payload's length for the size limit.
        yield (
            device_id,
            str(body.get("ts", "")),
            ParsedMessage(f"{prefix}/{device_id}/telemetry", body, 12 * len(text)),
        )


def _value(text: str) -> float | str:
    # What the cell's JSON would decode to: numbers (infinities and NaN too) as floats,
    # anything else as text, so that the decoder — not this reader — refuses it with the
    # reason the daemon would give.
    try:
        return float(text)
    except ValueError:
        return text
