"""Ingest benchmark: the running monitor daemon against a bare paho subscriber, same load.

    .venv/bin/python bench/ingest.py [--messages 200000] [--devices 2000] [--publishers 4]
                                     [--rate MSG_PER_S] [--transport paho|aiomqtt]
                                     [--warmup 5] [--daemon-only]

Starts its own broker (devenv), then twice publishes the same load with several publisher
processes at QoS 1 (5 metrics per message, the message's ``ts`` is the publish time):

1. to the real ``monitor run`` daemon (SQLite in a temp dir): sustained messages/s from
   first publish to last processed, p50/p95/p99 publish→processed latency from the daemon's
   ``monitor_event_lag_seconds`` histogram, the same after the first ``--warmup`` seconds
   (while devices are first heard of), resident memory per device;
2. to a bare paho subscriber process that only ``json.loads`` each message: the same figures,
   and the daemon's rate as a ratio of it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devenv.broker import Broker
from devenv.ports import free_port
from devenv.prometheus import scrape


def publisher(
    port: int, index: int, devices: list[str], count: int, rate: float, ready: mp.Event
) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    rng = random.Random(index)
    ready.wait()
    infos = []
    began = time.monotonic()
    for i in range(count):
        if rate and i % 50 == 0:
            ahead = began + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        device = devices[i % len(devices)]
        metrics = {f"m{k}": 20.0 + k + rng.gauss(0, 1) for k in range(5)}
        payload = json.dumps({"ts": time.time(), "metrics": metrics, "seq": i})
        infos.append(client.publish(f"devices/{device}/telemetry", payload, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def publish_load(port: int, messages: int, devices: int, publishers: int, rate: float) -> float:
    """Publish the load from several processes; returns the wall time publishing started."""
    names = [f"bench-{i:05d}" for i in range(devices)]
    ready = mp.Event()
    per = messages // publishers
    procs = [
        mp.Process(
            target=publisher, args=(port, i, names[i::publishers], per, rate / publishers, ready)
        )
        for i in range(publishers)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every publisher connect before the clock starts
    started = time.time()
    ready.set()
    for p in procs:
        p.join()
    return started


def bare_subscriber(port: int, expected: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    lags: list[float] = []
    done = mp.Event()
    state = {"n": 0, "last": 0.0}

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        now = time.time()
        lags.append(now - body["ts"])
        state["n"] += 1
        state["last"] = now
        if state["n"] >= expected:
            done.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bare")
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("devices/+/telemetry", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(600)
    client.loop_stop()
    out.put((state["n"], state["last"], lags))


def histogram_quantile(samples: dict[str, float], name: str, q: float) -> float:
    buckets = sorted(
        (float(k.split('le="')[1].rstrip('"}')), v)
        for k, v in samples.items()
        if k.startswith(f"{name}_bucket") and "+Inf" not in k
    )
    total = samples[f"{name}_count"]
    target = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            share = (target - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + share * (bound - previous_bound)
        previous_bound, previous_count = bound, count
    return float("inf")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_daemon(broker: Broker, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    metrics_port = free_port()
    config = workdir / "monitor.toml"
    config.write_text(
        f'[mqtt]\nport = {broker.port}\nclient_id = "bench-monitor"\n'
        f'transport = "{args.transport}"\n'
        f'[database]\nurl = "sqlite:///{workdir}/bench.db"\n'
        f'[metrics]\nport = {metrics_port}\n[log]\nlevel = "WARNING"\n'
    )
    log = (workdir / "monitor.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)], stdout=log, stderr=log
    )
    try:
        deadline = time.time() + 30
        while (scrape(metrics_port) or {}).get("monitor_broker_connected") != 1:
            if time.time() > deadline:
                raise SystemExit("monitor did not start; see " + str(workdir / "monitor.log"))
            time.sleep(0.2)
        rss_before = rss_kib(proc.pid)
        # The histogram as it stood once the fleet was known: what follows is steady state.
        warm: dict[str, float] = {}
        timer = threading.Timer(1.0 + args.warmup, lambda: warm.update(scrape(metrics_port) or {}))
        timer.start()
        started = publish_load(broker.port, args.messages, args.devices, args.publishers, args.rate)
        total = (args.messages // args.publishers) * args.publishers
        last_count, last_change = 0.0, time.time()
        samples: dict[str, float] = {}
        while True:
            samples = scrape(metrics_port) or samples
            count = samples.get("monitor_messages_total", 0.0)
            if count != last_count:
                last_count, last_change = count, time.time()
            if count >= total or time.time() - last_change > 20:
                break
            time.sleep(0.05)
        finished = last_change
        rss_after = rss_kib(proc.pid)
        timer.join()
        steady = {name: value - warm.get(name, 0.0) for name, value in samples.items()}
        return {
            "processed": count,
            "rate": count / (finished - started),
            "p50_ms": histogram_quantile(samples, "monitor_event_lag_seconds", 0.5) * 1000,
            "p95_ms": histogram_quantile(samples, "monitor_event_lag_seconds", 0.95) * 1000,
            "p99_ms": histogram_quantile(samples, "monitor_event_lag_seconds", 0.99) * 1000,
            **{
                f"steady_p{q}_ms": histogram_quantile(steady, "monitor_event_lag_seconds", q / 100)
                * 1000
                for q in (50, 95, 99)
            },
            "rss_mib": rss_after / 1024,
            "bytes_per_device": (rss_after - rss_before) * 1024 / args.devices,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def run_bare(broker: Broker, args: argparse.Namespace) -> dict[str, float]:
    total = (args.messages // args.publishers) * args.publishers
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    sub = mp.Process(target=bare_subscriber, args=(broker.port, total, out))
    sub.start()
    time.sleep(1.0)
    started = publish_load(broker.port, args.messages, args.devices, args.publishers, args.rate)
    count, last, lags = out.get(timeout=600)
    sub.join()
    lags.sort()
    return {
        "processed": count,
        "rate": count / (last - started),
        "p50_ms": statistics.median(lags) * 1000,
        "p95_ms": lags[int(0.95 * (len(lags) - 1))] * 1000,
        "p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--transport", choices=["paho", "aiomqtt"], default="paho")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="total publish rate in msg/s (0: as fast as possible, which measures saturation"
        " throughput; the latency then is mostly queueing behind the backlog)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds after publishing starts that the steady-state latency leaves out (the"
        " first message of each device registers it and starts its detectors)",
    )
    parser.add_argument(
        "--daemon-only",
        action="store_true",
        help="skip the bare subscriber (half the time, when only the daemon's figures matter)",
    )
    args = parser.parse_args()
    print(
        f"load: {args.messages} messages, {args.devices} devices, {args.publishers} publishers,"
        f" QoS 1, 5 metrics/message; {os.cpu_count()} cores; transport {args.transport};"
        f" publish rate {'unlimited' if not args.rate else f'{args.rate:.0f} msg/s'}"
    )
    with tempfile.TemporaryDirectory() as tmp, Broker() as broker:
        daemon = run_daemon(broker, args, Path(tmp))
    results = [("monitor daemon", daemon)]
    if not args.daemon_only:
        with Broker() as broker:
            results.append(("bare paho + json.loads", run_bare(broker, args)))
    print(f"{'':28}{'msg/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'processed':>11}")
    for name, r in results:
        print(
            f"{name:28}{r['rate']:>10.0f}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['p99_ms']:>10.1f}"
            f"{r['processed']:>11.0f}"
        )
    if len(results) > 1:
        print(f"daemon / bare throughput ratio: {daemon['rate'] / results[1][1]['rate']:.2f}")
    print(
        f"daemon after the first {args.warmup:.0f} s: p50 {daemon['steady_p50_ms']:.1f} ms,"
        f" p95 {daemon['steady_p95_ms']:.1f} ms, p99 {daemon['steady_p99_ms']:.1f} ms"
    )
    print(
        f"daemon resident memory: {daemon['rss_mib']:.1f} MiB;"
        f" growth per device over the run: {daemon['bytes_per_device']:.0f} bytes"
    )


if __name__ == "__main__":
    main()
