"""Prometheus metrics: the names are a contract with dashboards and alerts, keep them stable."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("monitor_messages", "Telemetry messages accepted and processed.")
REJECTED = Counter(
    "monitor_messages_rejected", "Messages refused and parked, by reason.", ["reason"]
)
CASES_OPENED = Counter("monitor_cases_opened", "Proactive service cases opened.")
NOTIFICATIONS = Counter(
    "monitor_notifications",
    "Notification delivery attempts by channel and outcome (sent, retry, dead).",
    ["channel", "outcome"],
)
DEAD_LETTERS = Counter(
    "monitor_notifications_dead_letters",
    "Notifications given up after their last attempt (or refused for good), by channel.",
    ["channel"],
)
PROCESSING_LATENCY = Histogram(
    "monitor_processing_latency_seconds",
    "From a message's arrival at the monitor to the end of its batch's processing.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENT_LAG = Histogram(
    "monitor_event_lag_seconds",
    "From a message's own timestamp to the end of its processing: for live devices with a"
    " synchronised clock, the publish-to-processed latency; large values mean a backlog.",
    buckets=(
        0.001,
        0.002,
        0.005,
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1.0,
        2.0,
        5.0,
        10.0,
        30.0,
        60.0,
        300.0,
        3600.0,
    ),
)
BATCH_SIZE = Histogram(
    "monitor_batch_size",
    "Messages per micro-batch handed to the pipeline.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
DEVICES = Gauge("monitor_devices", "Devices with detector state in this process.")
OUTBOX_PENDING = Gauge("monitor_outbox_pending", "Notifications waiting for delivery.")
BROKER_CONNECTED = Gauge("monitor_broker_connected", "1 while connected to the MQTT broker.")
RULE_RELOADS = Counter(
    "monitor_rules_reloads",
    "Rule directory reloads after a change, by outcome (applied, rejected: old rules kept).",
    ["outcome"],
)
SUPPRESSED = Counter(
    "monitor_suppressed",
    "Alarms noise control kept from opening a case, by reason (the stage that did).",
    ["reason"],
)
