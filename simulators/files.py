"""Write a fleet to files: wide telemetry CSV, ``truth.json`` and the device manifest CSV.

The telemetry CSV is in delivery order (see :func:`simulators.fleet.delivery_order`), so a
replay from file shows the same late and duplicate messages as a live MQTT run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulators.fleet import MANIFEST_FIELDS, Fleet, Reading, delivery_order


def write_telemetry_csv(
    readings: Iterable[Reading], metric_names: Sequence[str], path: Path
) -> int:
    """Write ``device_id,ts,<metric>,…`` rows; a metric a device lacks is an empty cell.

    Returns the number of rows written (the header not counted).
    """
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["device_id", "ts", *metric_names])
        for r in readings:
            writer.writerow(
                [
                    r.device_id,
                    repr(r.ts),
                    *(repr(r.metrics[m]) if m in r.metrics else "" for m in metric_names),
                ]
            )
            rows += 1
    return rows


def write_telemetry_jsonl(readings: Iterable[Reading], path: Path) -> int:
    """Write one device payload plus its ``device_id`` per line (``monitor backtest``'s JSON
    Lines input): unlike the wide CSV, each message says its model, firmware and sequence
    number, as it does to the daemon.

    Returns the number of lines written.
    """
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        for r in readings:
            out.write(json.dumps({"device_id": r.device_id, **r.payload()}) + "\n")
            rows += 1
    return rows


def write_truth(truth: dict[str, Any], path: Path) -> None:
    """Write the fleet's ground truth as indented JSON."""
    path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_manifest(rows: Iterable[dict[str, str]], path: Path) -> None:
    """Write the device manifest CSV with exactly the ``MANIFEST_FIELDS`` header."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(MANIFEST_FIELDS))
        writer.writeheader()
        writer.writerows(rows)


def write_fleet(
    fleet: Fleet, telemetry: Path, truth: Path | None = None, manifest: Path | None = None
) -> int:
    """Write the telemetry (in delivery order; JSON Lines payloads if its name ends in
    ``.jsonl``, else the wide CSV) and, when given, the truth and manifest.

    Returns the number of telemetry rows written.
    """
    fleet_truth = fleet.truth()
    readings = delivery_order(fleet.readings(), fleet_truth)
    if telemetry.suffix == ".jsonl":
        rows = write_telemetry_jsonl(readings, telemetry)
    else:
        rows = write_telemetry_csv(readings, fleet.metric_names, telemetry)
    if truth is not None:
        write_truth(fleet_truth, truth)
    if manifest is not None:
        write_manifest(fleet.manifest_rows(), manifest)
    return rows
