"""Checkpoint benchmark: how long the periodic checkpoint holds up the batches behind it.

    .venv/bin/python bench/checkpoint.py [--devices 2000] [--interval 10] [--batch 250]

Runs the pipeline in this process (SQLite in a temp dir, no rules) on batches of telemetry
from ``--devices`` devices, back to back, for two and a half checkpoint intervals, and times
the checkpoint's share of each gap between two batches: p50, p99 and the longest pause, and
the total. The end-to-end latency (bench/ingest.py) on a shared two-core machine varies too
much from run to run to show a pause of this size; this measures it alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

from monitor.config import DatabaseSettings, DetectSettings, Settings
from monitor.ingest import RawMessage
from monitor.pipeline import Pipeline
from monitor.store import open_database


def batch(devices: list[str], first: int, size: int, rng: random.Random) -> list[RawMessage]:
    out = []
    for i in range(first, first + size):
        metrics = {f"m{k}": 20.0 + k + rng.gauss(0, 1) for k in range(5)}
        body = {"ts": time.time(), "metrics": metrics, "seq": i}
        topic = f"devices/{devices[i % len(devices)]}/telemetry"
        out.append(RawMessage(topic, json.dumps(body).encode(), time.time()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10.0, help="checkpoint_seconds")
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        settings = Settings(
            database=DatabaseSettings(url=url),
            detect=DetectSettings(checkpoint_seconds=args.interval),
        )
        pipeline = Pipeline(settings, open_database(url), [], notify=False)
        pauses: list[float] = []
        checkpoint_when_due = pipeline._checkpoint_when_due  # what is timed

        def timed() -> None:
            began = time.perf_counter()
            checkpoint_when_due()
            pauses.append(time.perf_counter() - began)

        pipeline._checkpoint_when_due = timed  # type: ignore[method-assign]
        devices = [f"bench-{i:05d}" for i in range(args.devices)]
        rng = random.Random(1)
        end = time.monotonic() + 2.5 * args.interval
        sent = 0
        while time.monotonic() < end:
            pipeline.process(batch(devices, sent, args.batch, rng))
            sent += args.batch
        pipeline.close()
    pauses.sort()
    print(
        f"{args.devices} devices, {len(pauses)} batches of {args.batch}, checkpoint every"
        f" {args.interval:.0f} s: checkpoint pause per gap p50"
        f" {statistics.median(pauses) * 1e3:.2f} ms, p99"
        f" {pauses[int(0.99 * (len(pauses) - 1))] * 1e3:.2f} ms, longest"
        f" {pauses[-1] * 1e3:.1f} ms; {sum(pauses):.2f} s in all"
    )


if __name__ == "__main__":
    main()
