"""The simulated fleet: determinism, healthy behaviour, faults, benign events, files, scoring."""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulators.cli import main
from simulators.faults import severity
from simulators.files import write_fleet
from simulators.fleet import MANIFEST_FIELDS, Fleet, Reading, build_fleet, delivery_order
from simulators.products import PRODUCTS
from simulators.scoring import score

DAY = 86400.0
START = 1_760_000_000.0


def running_mask(kind: str, m: dict[str, np.ndarray]) -> np.ndarray:
    """Samples where the device works, so load-dependent effects show."""
    return {
        "water_pump": lambda: m["flow_lpm"] > 5,
        "heat_pump": lambda: m["power_kw"] > 0.1,
        "home_battery": lambda: np.abs(m["current_a"]) > 5,
        "ev_charger": lambda: m["current_a"] > 2,
    }[kind]()


@pytest.fixture(scope="module")
def faulty_fleet() -> Fleet:
    return build_fleet(seed=11, devices=16, days=24, start=START, fault_share=1.0)


@pytest.fixture(scope="module")
def mixed_fleet() -> Fleet:
    return build_fleet(seed=5, devices=40, days=12, start=START)


def benign_of(fleet: Fleet, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (device_id, event)
        for device_id, device in fleet.truth()["devices"].items()
        for event in device["benign"]
        if event["kind"] == kind
    ]


def test_same_seed_gives_identical_readings() -> None:
    first = build_fleet(seed=3, devices=6, days=2, start=START)
    second = build_fleet(seed=3, devices=6, days=2, start=START)
    assert list(first.readings()) == list(second.readings())
    assert first.truth() == second.truth()
    assert first.manifest_rows() == second.manifest_rows()


def test_different_seed_gives_different_readings() -> None:
    first = build_fleet(seed=3, devices=4, days=1, start=START)
    second = build_fleet(seed=4, devices=4, days=1, start=START)
    assert [r.metrics for r in first.readings()] != [r.metrics for r in second.readings()]


def test_readings_are_in_time_order_with_increasing_seq_per_device(mixed_fleet: Fleet) -> None:
    last_ts = -1.0
    last_seq: dict[str, int] = {}
    for r in mixed_fleet.readings():
        assert r.ts >= last_ts
        assert r.seq > last_seq.get(r.device_id, 0)
        last_ts, last_seq[r.device_id] = r.ts, r.seq
    assert len(last_seq) == 40


def test_every_kind_reports_its_own_metrics_and_model(mixed_fleet: Fleet) -> None:
    truth = mixed_fleet.truth()["devices"]
    seen: dict[str, Reading] = {}
    for r in mixed_fleet.readings():
        seen.setdefault(r.device_id, r)
    kinds = {d["kind"] for d in truth.values()}
    assert kinds == {"water_pump", "heat_pump", "home_battery", "ev_charger"}
    for device_id, r in seen.items():
        product = PRODUCTS[truth[device_id]["kind"]]
        assert set(r.metrics) == set(product.metric_names)
        assert 3 <= len(r.metrics) <= 6
        assert r.model in product.models
        assert all(np.isfinite(v) for v in r.metrics.values())


def test_start_defaults_to_now_minus_days_so_no_timestamp_is_in_the_future() -> None:
    fleet = build_fleet(seed=1, devices=3, days=1)
    now = time.time()
    assert fleet.start % 300 == 0
    assert now - DAY - 300 <= fleet.start <= now - DAY
    assert max(r.ts for r in fleet.readings()) <= now


def test_pump_runs_more_in_the_morning_than_at_night() -> None:
    fleet = build_fleet(seed=2, devices=1, days=10, start=START, fault_share=0.0)
    device = fleet.devices[0]
    s = fleet.series(device.device_id)
    hour = ((s.ts + device.customer.site.utc_offset_h * 3600) % DAY) / 3600
    running = s.metrics["flow_lpm"] > 5
    assert running[(hour >= 7) & (hour < 8)].mean() > 2 * running[(hour >= 2) & (hour < 4)].mean()


def test_severity_is_small_early_and_reaches_one_at_failure() -> None:
    ts = np.array([0.0, 10.0, 25.0, 50.0, 100.0, 400.0])
    s = severity(ts, onset=0.0, failure=100.0)
    assert s[0] == 0.0
    assert s[2] < 0.15
    assert s[4] == pytest.approx(1.0)
    assert np.all(np.diff(s) >= 0)
    assert s[-1] == 2.0


DIRECTION = {
    "bearing_wear": ("vibration_mms", +1),
    "impeller_clog": ("flow_lpm", -1),
    "refrigerant_leak": ("compressor_temp_c", +1),
    "cell_degradation": ("capacity_kwh", -1),
    "contactor_wear": ("connector_temp_c", +1),
}


def test_fault_degrades_its_metric_between_onset_and_failure(faulty_fleet: Fleet) -> None:
    checked = set()
    for device in faulty_fleet.devices:
        (fault,) = device.faults
        s = faulty_fleet.series(device.device_id)
        metric, sign = DIRECTION[fault.kind.name]
        running = running_mask(device.product.kind, s.metrics)
        before = running & (s.ts >= fault.onset - 3 * DAY) & (s.ts < fault.onset)
        at_failure = running & (s.ts >= fault.failure - DAY) & (s.ts < fault.failure)
        values = s.metrics[metric]
        change = values[at_failure].mean() - values[before].mean()
        assert sign * change > values[before].std(), (device.device_id, fault.kind.name)
        checked.add(fault.kind.name)
    assert checked == set(DIRECTION)


def test_bearing_wear_is_visible_against_own_baseline_at_thirty_percent(
    faulty_fleet: Fleet,
) -> None:
    pumps = [d for d in faulty_fleet.devices if d.faults[0].kind.name == "bearing_wear"]
    assert pumps
    for device in pumps:
        fault = device.faults[0]
        s = faulty_fleet.series(device.device_id)
        running = running_mask("water_pump", s.metrics)
        vib = s.metrics["vibration_mms"]
        daily = [
            vib[
                running & (s.ts >= fault.onset - k * DAY) & (s.ts < fault.onset - (k - 1) * DAY)
            ].mean()
            for k in range(1, 6)
        ]
        t30 = fault.onset + 0.3 * (fault.failure - fault.onset)
        at30 = vib[running & (s.ts >= t30 - DAY) & (s.ts < t30)].mean()
        assert at30 > np.mean(daily) + 4 * np.std(daily)
        # ... and still hidden at onset: the first day looks like the baseline.
        first_day = vib[running & (s.ts >= fault.onset) & (s.ts < fault.onset + DAY)].mean()
        assert first_day < max(daily) + 0.1


def test_default_fleet_has_a_fifth_faulty_with_faults_after_a_week_of_history() -> None:
    truth = build_fleet(seed=8, devices=50, days=30, start=START).truth()
    faults = [f for d in truth["devices"].values() for f in d["faults"]]
    assert len(faults) == 10
    assert all(5 * DAY <= f["failure"] - f["onset"] <= 12 * DAY for f in faults)
    assert all(f["onset"] >= truth["start"] + 7 * DAY for f in faults)
    assert all(f["failure"] <= truth["end"] for f in faults)


def test_cold_snap_moves_every_device_of_a_temperature_dependent_kind(mixed_fleet: Fleet) -> None:
    snap = mixed_fleet.truth()["cold_snap"]
    assert snap is not None
    assert 2 * DAY <= snap["end"] - snap["start"] <= 3 * DAY
    watched = {
        "heat_pump": "outdoor_temp_c",
        "home_battery": "cell_temp_c",
        "ev_charger": "connector_temp_c",
    }
    for device in mixed_fleet.devices:
        metric = watched.get(device.product.kind)
        if metric is None:
            continue
        s = mixed_fleet.series(device.device_id)
        core = (s.ts >= snap["start"] + 0.5 * DAY) & (s.ts < snap["start"] + 1.5 * DAY)
        before = (s.ts >= snap["start"] - 2 * DAY) & (s.ts < snap["start"])
        drop = s.metrics[metric][before].mean() - s.metrics[metric][core].mean()
        assert drop > 2.0, (device.device_id, metric, drop)
    # Every device carries the cold snap in its benign events.
    assert len(benign_of(mixed_fleet, "cold_snap")) == len(mixed_fleet.devices)


def test_heat_pumps_draw_more_power_in_the_cold_snap(mixed_fleet: Fleet) -> None:
    snap = mixed_fleet.truth()["cold_snap"]
    for device in mixed_fleet.devices:
        if device.product.kind != "heat_pump" or device.faults:
            continue
        s = mixed_fleet.series(device.device_id)
        core = (s.ts >= snap["start"] + 0.5 * DAY) & (s.ts < snap["start"] + 1.5 * DAY)
        before = (s.ts >= snap["start"] - 2 * DAY) & (s.ts < snap["start"])
        assert s.metrics["power_kw"][core].mean() > s.metrics["power_kw"][before].mean()


def test_truth_records_every_benign_event_kind(mixed_fleet: Fleet) -> None:
    kinds = {e["kind"] for d in mixed_fleet.truth()["devices"].values() for e in d["benign"]}
    assert kinds == {
        "cold_snap",
        "idle_day",
        "connectivity_gap",
        "firmware_update",
        "spike",
        "late_message",
        "duplicate_message",
    }


def test_truth_is_json_serialisable(mixed_fleet: Fleet) -> None:
    truth = mixed_fleet.truth()
    assert json.loads(json.dumps(truth)) == truth
    assert {"seed", "start", "end", "step", "devices"} <= set(truth)


def test_connectivity_gap_sends_no_readings(mixed_fleet: Fleet) -> None:
    gaps = benign_of(mixed_fleet, "connectivity_gap")
    assert gaps
    by_device: dict[str, list[float]] = {}
    for r in mixed_fleet.readings():
        by_device.setdefault(r.device_id, []).append(r.ts)
    for device_id, gap in gaps:
        ts = np.array(by_device[device_id])
        assert not np.any((ts >= gap["start"]) & (ts < gap["end"]))
        assert np.any(ts < gap["start"])
        assert np.any(ts >= gap["end"])


def test_firmware_update_changes_fw_string_at_its_time(mixed_fleet: Fleet) -> None:
    updates = dict(benign_of(mixed_fleet, "firmware_update"))
    assert updates
    for r in mixed_fleet.readings():
        update = updates.get(r.device_id)
        if update is not None:
            expected = update["fw_after"] if r.ts >= update["start"] else update["fw_before"]
            assert r.fw == expected
            assert 0 < abs(update["offset"]) < 2


def test_spike_is_a_single_sample_outlier(mixed_fleet: Fleet) -> None:
    spikes = benign_of(mixed_fleet, "spike")
    assert spikes
    for device_id, spike in spikes:
        s = mixed_fleet.series(device_id)
        i = int(np.searchsorted(s.ts, spike["start"]))
        values = s.metrics[spike["metric"]]
        neighbours = (values[i - 1] + values[min(i + 1, len(values) - 1)]) / 2
        assert abs(values[i] - neighbours) > 0.5 * abs(spike["size"])


def test_idle_day_shows_no_load(mixed_fleet: Fleet) -> None:
    load_metric = {
        "water_pump": "flow_lpm",
        "heat_pump": "power_kw",
        "home_battery": "current_a",
        "ev_charger": "current_a",
    }
    idle = benign_of(mixed_fleet, "idle_day")
    assert idle
    kinds = {d.device_id: d.product.kind for d in mixed_fleet.devices}
    for device_id, event in idle:
        s = mixed_fleet.series(device_id)
        window = (s.ts >= event["start"]) & (s.ts < event["end"])
        values = s.metrics[load_metric[kinds[device_id]]][window]
        assert event["end"] - event["start"] == pytest.approx(DAY)
        # Spikes may land in the idle day; the typical sample shows no load.
        assert np.median(np.abs(values)) < 1.0


def test_delivery_order_delays_late_messages_and_repeats_duplicates(mixed_fleet: Fleet) -> None:
    truth = mixed_fleet.truth()
    clean = list(mixed_fleet.readings())
    delivered = list(delivery_order(clean, truth))
    late = benign_of(mixed_fleet, "late_message")
    duplicates = benign_of(mixed_fleet, "duplicate_message")
    assert late
    assert duplicates
    assert len(delivered) == len(clean) + len(duplicates)
    assert Counter((r.device_id, r.seq) for r in delivered) == Counter(
        [(r.device_id, r.seq) for r in clean] + [(d, e["seq"]) for d, e in duplicates]
    )
    position = {(r.device_id, r.seq): i for i, r in enumerate(delivered)}
    for device_id, event in late:
        late_at = position[(device_id, event["seq"])]
        # Its device's next reading was delivered before it: out of order.
        assert position[(device_id, event["seq"] + 1)] < late_at


def test_csv_has_contract_header_and_one_row_per_reading(tmp_path: Path) -> None:
    fleet = build_fleet(seed=9, devices=8, days=3, start=START)
    rows = write_fleet(fleet, tmp_path / "t.csv", tmp_path / "truth.json", tmp_path / "d.csv")
    with (tmp_path / "t.csv").open(newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    assert header == ["device_id", "ts", *sorted(fleet.metric_names)]
    assert len(body) == rows == len(list(delivery_order(fleet.readings(), fleet.truth())))
    kinds = {d.device_id: d.product for d in fleet.devices}
    for row in body[:200]:
        own = set(kinds[row[0]].metric_names)
        for name, cell in zip(header[2:], row[2:], strict=True):
            assert (cell != "") == (name in own)
        float(row[1])
    assert json.loads((tmp_path / "truth.json").read_text()) == fleet.truth()


def test_manifest_has_exact_keys_and_a_mix_of_languages(tmp_path: Path) -> None:
    fleet = build_fleet(seed=9, devices=30, days=1, start=START)
    rows = fleet.manifest_rows()
    assert all(list(r) == list(MANIFEST_FIELDS) for r in rows)
    assert list(MANIFEST_FIELDS) == [
        "device_id",
        "kind",
        "model",
        "customer_id",
        "customer_name",
        "email",
        "phone",
        "language",
        "channel",
        "timezone",
        "site",
        "quiet_hours",
    ]
    # Two owners in three keep the night quiet; the third is happy to hear at any hour.
    assert {r["quiet_hours"] for r in rows} == {"22:00-07:00", ""}
    assert {r["language"] for r in rows} == {"en", "de", "ja"}
    assert rows[6]["email"] == "owner-0007@example.com"
    assert {r["channel"] for r in rows} == {"email"}
    write_fleet(fleet, tmp_path / "t.csv", manifest=tmp_path / "d.csv")
    with (tmp_path / "d.csv").open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == rows


def test_fifty_devices_for_thirty_days_generate_within_seconds() -> None:
    started = time.monotonic()
    fleet = build_fleet(seed=1, devices=50, days=30, start=START)
    count = sum(1 for _ in fleet.readings())
    assert count > 0.99 * 50 * 30 * 288
    assert time.monotonic() - started < 15


TRUTH: dict[str, Any] = {
    "seed": 0,
    "start": 0.0,
    "end": 20 * DAY,
    "step": 300.0,
    "devices": {
        "wp-0001": {
            "kind": "water_pump",
            "model": "WP-200",
            "benign": [],
            "faults": [
                {
                    "kind": "bearing_wear",
                    "onset": 8 * DAY,
                    "failure": 16 * DAY,
                    "metrics": ["vibration_mms"],
                }
            ],
        },
        "hp-0002": {
            "kind": "heat_pump",
            "model": "HP-8",
            "faults": [],
            "benign": [
                {"kind": "firmware_update", "start": 5 * DAY, "end": 5 * DAY},
                {"kind": "cold_snap", "start": 9 * DAY, "end": 11 * DAY},
            ],
        },
    },
}


def test_scoring_counts_case_before_onset_as_false_alarm() -> None:
    result = score(TRUTH, [("wp-0001", 7 * DAY)])
    assert result.false_alarms == 1
    assert result.caught == 0
    assert result.missed == 1
    assert result.cases[0].outcome == "false_alarm"


def test_scoring_catches_case_between_onset_and_failure_with_lead_time() -> None:
    result = score(TRUTH, [("wp-0001", 10 * DAY), ("wp-0001", 11 * DAY)])
    assert result.caught == 1
    assert result.recall_before_failure == 1.0
    assert result.median_lead_time == pytest.approx(6 * DAY)
    assert result.median_detection_delay == pytest.approx(2 * DAY)
    assert [c.outcome for c in result.cases] == ["caught", "repeat"]
    assert result.false_alarms == 0


def test_scoring_counts_case_after_failure_as_late_not_false_alarm() -> None:
    result = score(TRUTH, [("wp-0001", 16.5 * DAY)])
    assert result.late == 1
    assert result.false_alarms == 0
    assert result.recall_before_failure == 0.0


def test_scoring_names_nearest_benign_event_of_a_false_alarm() -> None:
    result = score(TRUTH, [("hp-0002", 5.5 * DAY), ("hp-0002", 11.8 * DAY), ("hp-0002", 15 * DAY)])
    assert [c.nearest_benign for c in result.cases] == ["firmware_update", "cold_snap", None]
    # Healthy time: the pump until onset (8 d) plus the whole heat pump run (20 d).
    assert result.healthy_device_days == pytest.approx(28.0)
    assert result.false_alarms_per_1000_device_days == pytest.approx(3000 / 28)
    assert any("false alarms: 3" in line for line in result.summary_lines())
    assert len(result.case_lines()) == 3


def test_scoring_a_fleet_with_perfect_cases_catches_every_fault(faulty_fleet: Fleet) -> None:
    truth = faulty_fleet.truth()
    cases = [
        (device_id, f["onset"] + 0.3 * (f["failure"] - f["onset"]))
        for device_id, d in truth["devices"].items()
        for f in d["faults"]
    ]
    result = score(truth, cases)
    assert result.caught == len(cases) == result.faults
    assert result.p10_lead_time is not None
    assert result.p10_lead_time > 0


def test_cli_writes_telemetry_truth_and_manifest(tmp_path: Path) -> None:
    out, truth, manifest = tmp_path / "t.csv", tmp_path / "truth.json", tmp_path / "d.csv"
    code = main(
        [
            "--devices",
            "4",
            "--days",
            "1",
            "--seed",
            "2",
            "--step",
            "600",
            "--start",
            str(START),
            "--out",
            str(out),
            "--truth",
            str(truth),
            "--manifest",
            str(manifest),
            "--quiet",
        ]
    )
    assert code == 0
    fleet = build_fleet(seed=2, devices=4, days=1, step=600, start=START)
    delivered = list(delivery_order(fleet.readings(), fleet.truth()))
    assert len(out.read_text().splitlines()) == 1 + len(delivered)
    assert json.loads(truth.read_text())["seed"] == 2
    assert manifest.read_text().splitlines()[0] == ",".join(MANIFEST_FIELDS)


def test_cli_without_output_or_broker_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--devices", "2"])
    assert exit_info.value.code == 2


@pytest.mark.integration
def test_publisher_delivers_every_qos1_message_and_leaves_status_offline(broker: Any) -> None:
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulators.publisher import publish_fleet

    fleet = build_fleet(seed=4, devices=5, days=0.5, start=START)
    expected = Counter(
        (r.device_id, r.seq) for r in delivery_order(fleet.readings(), fleet.truth())
    )
    prefix = f"simtest-{uuid.uuid4().hex[:8]}"
    received: Counter[tuple[str, int]] = Counter()
    status: dict[str, str] = {}
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device_id, channel = msg.topic.split("/")[1:3]
        with lock:
            if channel == "telemetry":
                payload = json.loads(msg.payload)
                assert set(payload) == {"ts", "metrics", "seq", "fw", "model"}
                received[(device_id, payload["seq"])] += 1
            else:
                status[device_id] = msg.payload.decode()

    watcher = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{prefix}-watcher"
    )
    watcher.on_message = on_message
    watcher.on_connect = lambda c, *_: c.subscribe(f"{prefix}/+/+", qos=1)
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.connect(broker.host, broker.port)
    watcher.loop_start()
    try:
        assert subscribed.wait(10)
        report = publish_fleet(
            fleet,
            broker.host,
            broker.port,
            prefix=prefix,
            client_id_prefix=prefix,
            drain_timeout=20,
        )
        assert report.published == report.acknowledged == sum(expected.values())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                # Each device first says "online", then "offline": wait for the last word.
                if received == expected and list(status.values()) == ["offline"] * 5:
                    break
            time.sleep(0.05)
        assert received == expected
        assert set(status.values()) == {"offline"}
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    # A late subscriber gets the retained status: offline.
    retained: dict[str, str] = {}
    late = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{prefix}-late")
    late.on_message = lambda _c, _u, m: retained.__setitem__(m.topic, m.payload.decode())
    late.on_connect = lambda c, *_: c.subscribe(f"{prefix}/+/status", qos=1)
    late.connect(broker.host, broker.port)
    late.loop_start()
    try:
        deadline = time.monotonic() + 10
        while len(retained) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(retained.values()) == {"offline"}
        assert len(retained) == 5
    finally:
        late.disconnect()
        late.loop_stop()


@pytest.mark.integration
def test_publisher_stops_cleanly_when_asked(broker: Any) -> None:
    import threading

    from simulators.publisher import publish_fleet

    fleet = build_fleet(seed=4, devices=3, days=2, start=START)
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    prefix = f"simtest-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    timer.start()
    try:
        # At one simulated second per wall second this would take two days.
        report = publish_fleet(
            fleet,
            broker.host,
            broker.port,
            prefix=prefix,
            speed=1.0,
            stop=stop,
            client_id_prefix=prefix,
        )
    finally:
        timer.cancel()
    assert report.stopped
    assert report.published == report.acknowledged
    assert time.monotonic() - started < 10
