"""Command line: generate a simulated fleet to files and/or publish it over MQTT.

    simulators --devices 60 --days 30 --seed 7 --out telemetry.csv --truth truth.json \
        --manifest devices.csv
    simulators --devices 60 --days 30 --seed 7 --truth truth.json --manifest devices.csv \
        --mqtt-host 127.0.0.1 --mqtt-port 1883 --speed 20000
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from simulators.files import write_manifest, write_telemetry_csv, write_truth
from simulators.fleet import Fleet, build_fleet, delivery_order
from simulators.publisher import publish_fleet


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simulators",
        description="Simulate a fleet of connected products with ground truth; write it to "
        "files (--out) and/or publish it over MQTT (--mqtt-port).",
    )
    p.add_argument("--devices", type=int, default=20, help="number of devices (default 20)")
    p.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    p.add_argument("--seed", type=int, default=0, help="fleet seed, >= 0 (default 0)")
    p.add_argument(
        "--step",
        type=float,
        default=300.0,
        help="seconds between a device's readings (default 300)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=None,
        help="first timestamp, epoch seconds (default: now - days)",
    )
    p.add_argument(
        "--fault-share",
        type=float,
        default=0.2,
        help="share of devices that develop a fault (default 0.2)",
    )
    p.add_argument("--out", type=Path, help="write telemetry as a wide CSV here")
    p.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    p.add_argument("--manifest", type=Path, help="write the devices and owners CSV here")
    p.add_argument("--mqtt-host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, help="publish over MQTT to this broker port")
    p.add_argument("--prefix", default="devices", help="topic prefix (default devices)")
    p.add_argument("--client-id-prefix", default="sim", help="MQTT client id prefix")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="simulated seconds per wall second")
    pace.add_argument("--rate", type=float, help="messages per second overall")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is None and args.mqtt_port is None:
        parser.error("nothing to do: give --out and/or --mqtt-port")
    try:
        fleet = build_fleet(
            args.seed, args.devices, args.days, args.step, args.start, args.fault_share
        )
    except ValueError as e:
        parser.error(str(e))
    truth = fleet.truth()
    if args.truth is not None:
        write_truth(truth, args.truth)
    if args.manifest is not None:
        write_manifest(fleet.manifest_rows(), args.manifest)
    if args.out is not None:
        started = time.monotonic()
        rows = write_telemetry_csv(
            delivery_order(fleet.readings(), truth), fleet.metric_names, args.out
        )
        _say(
            args.quiet,
            f"wrote {rows} readings of {args.devices} devices to {args.out} "
            f"in {time.monotonic() - started:.1f} s",
        )
    if args.mqtt_port is not None:
        return _publish(args, fleet)
    return 0


def _publish(args: argparse.Namespace, fleet: Fleet) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def progress(sim_time: float, published: int) -> None:
        when = datetime.fromtimestamp(sim_time, UTC).strftime("%Y-%m-%d %H:%M")
        _say(args.quiet, f"simulated {when} UTC  published {published}")

    try:
        report = publish_fleet(
            fleet,
            args.mqtt_host,
            args.mqtt_port,
            prefix=args.prefix,
            speed=args.speed,
            rate=args.rate,
            stop=stop,
            on_progress=progress,
            progress_every=6 * 3600.0,
            client_id_prefix=args.client_id_prefix,
        )
    except ConnectionError as e:
        print(f"simulators: {e}", file=sys.stderr)
        return 2
    _say(
        args.quiet,
        f"published {report.published} telemetry messages "
        f"({report.acknowledged} acknowledged) in {report.wall_seconds:.1f} s"
        + (" (stopped)" if report.stopped else ""),
    )
    return 0 if report.acknowledged == report.published else 1


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)
