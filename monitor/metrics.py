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
# The service report's figures (monitor.service_gauges.refresh_service_metrics sets them); NaN while
# there is nothing to compute a figure from.
SERVICE_FIGURES = {
    name: Gauge(f"monitor_service_{name}", help_text)
    for name, help_text in (
        ("problems", "Cases that were not false alarms (the report's window)."),
        ("proactive_share", "Share of problems whose customer was contacted before noticing."),
        ("art_seconds", "Average resolution time: case opened to resolved."),
        ("resolution_rate", "Share of problems resolved."),
        ("csat", "Share of 4 and 5 answers on the 1-5 satisfaction survey."),
        ("ces", "Mean customer effort score, 1-7 (higher: easier)."),
        ("nps", "Net promoter score in points (-100 to 100)."),
        ("helpful_share", "Share of 'was this helpful?' clicks that said yes."),
        ("retention", "Share of customers who did not leave."),
        ("messages_per_problem", "Customer messages sent per problem (surveys excluded)."),
    )
}
SERVICE_QUANTILES = {
    "lead_time_seconds": Gauge(
        "monitor_service_lead_time_seconds",
        "Forecast failure time minus case opening, proactive problems, by quantile.",
        ["quantile"],
    ),
    "frt_seconds": Gauge(
        "monitor_service_frt_seconds",
        "Automated first response time: proactive case opened to first customer message.",
        ["quantile"],
    ),
}
SERVICE_SUPPRESSED = Gauge(
    "monitor_service_suppressed_notifications",
    "Notifications not sent, by reason (suppression events and unsent outbox statuses).",
    ["reason"],
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
