"""The monitor's configuration: one typed object, loaded and validated once at start-up.

Values come from a TOML file, then from environment variables named
``MONITOR_<SECTION>__<KEY>`` (for example ``MONITOR_MQTT__PORT=1884``), which win.
A wrong value stops start-up with a :class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = "proactive-monitor"
    topic_prefix: str = "devices"
    qos: Literal[0, 1, 2] = 1
    keepalive: int = Field(default=30, ge=5)
    username: str | None = None
    password: str | None = None
    transport: Literal["paho", "aiomqtt"] = "paho"
    max_batch: int = Field(default=500, ge=1)
    reconnect_max_delay: float = Field(default=10.0, gt=0)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_has_no_wildcards(cls, value: str) -> str:
        if not value or any(c in value for c in "#+") or value.endswith("/"):
            raise ValueError("use a plain topic prefix such as 'devices' (no '#', '+' or '/')")
        return value


class IngestSettings(_Section):
    max_payload_bytes: int = Field(default=16_384, ge=64)
    max_future_seconds: float = Field(default=300.0, ge=0)
    require_registration: bool = False


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/monitor.db"
    migrate: Literal["auto", "check"] = "auto"
    """An older database's schema on start: "auto" upgrades it (logging the revisions that
    ran); "check" refuses to start until `monitor db upgrade` is run (see docs/database.md)."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(
                "use 'sqlite:///path/to/file.db' or 'postgresql+psycopg://user@host/db'"
            )
        return value


class DetectSettings(_Section):
    warmup_samples: int = Field(default=144, ge=10)
    """Samples of a metric (in one operating state) before its baseline is trusted."""
    learning_hours: float = Field(default=72.0, ge=0)
    """Event time a metric learns from unconditionally before it is judged: the first days
    must show every operating state, not be held as faults."""
    baseline_halflife_hours: float = Field(default=336.0, gt=0)
    smoothing_halflife_minutes: float = Field(default=60.0, gt=0)
    """Superseded by ``smoothing_samples`` (smoothing now follows each device's own message
    interval); still accepted so that existing configuration files stay valid."""
    season_halflife_hours: float = Field(default=336.0, gt=0)
    load_halflife_minutes: float = Field(default=15.0, gt=0)
    """How slowly a running device's temperatures follow its load (the duty metric's share
    of full scale is smoothed with this half-life before it explains the other metrics)."""
    min_peers: int = Field(default=5, ge=2)
    """Devices of one model needed before a fleet-wide move is discounted as not a fault."""
    hold_z: float = Field(default=2.5, gt=0)
    """Above this deviation the baseline stops adapting, so a fault is not learned as normal."""
    smoothing_samples: float = Field(default=12.0, gt=0)
    """Half-life of the sustained deviation in the device's own message intervals (an hour on
    five-minute telemetry): durations follow each device's rate, so one default fits all."""
    learning_samples: int = Field(default=864, ge=0)
    """Learning also ends after this many message intervals, if that comes before
    ``learning_hours`` (72 h on five-minute telemetry, minutes on a 1 Hz rig)."""
    failure_sigma: float = Field(default=10.0, gt=0)
    """Forecast failure threshold: this many healthy spreads away from the device's baseline."""
    silence_min_intervals: float = Field(default=3.0, gt=0)
    """A device is reported silent once this many of its normal intervals pass without a
    message."""
    checkpoint_seconds: float = Field(default=30.0, gt=0)


class RulesSettings(_Section):
    dir: Path = Path(__file__).resolve().parent.parent / "rules"
    reload_seconds: float = Field(default=2.0, ge=0)
    """How often the daemon looks for changed rule files (0: never, rules load at start only)."""
    attributes_refresh_seconds: float = Field(default=60.0, gt=0)
    """How often device and customer attributes that rules test are re-read from the database."""


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_tls: bool = False
    timeout: float = Field(default=10.0, gt=0)
    sender: str = "service@example.com"


class WebhookSettings(_Section):
    url: str | None = None
    secret: str | None = None
    timeout: float = Field(default=10.0, gt=0)


class NotifySettings(_Section):
    smtp: SmtpSettings = SmtpSettings()
    support_webhook: WebhookSettings = WebhookSettings()
    poll_seconds: float = Field(default=1.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=12, ge=1)
    booking_url: str = "https://service.example.com/book"
    support_apprise_urls: list[str] = []
    """Apprise URLs (chat, SMS, push) on which support is told of cases and dead letters."""
    apprise_timeout: float = Field(default=10.0, gt=0)
    """Seconds one Apprise delivery (all of its URLs) may take."""
    reminder_after_hours: float | None = Field(default=None, gt=0)
    """Remind a customer who has not reacted this long after a message; unset: no reminders."""
    max_reminders: int = Field(default=0, ge=0)
    survey_delay_hours: float = Field(default=0.0, ge=0)
    """How long after a case is resolved its CSAT/CES survey is sent."""
    nps_interval_days: float = Field(default=92.0, gt=0)
    """At most one NPS question per customer in this many days (92: once per quarter)."""
    public_base_url: str = "http://127.0.0.1:8000"
    """Where the API serving the feedback links is reached by customers."""
    feedback_secret: str | None = None
    """Signs the customer's one-click links; unset: messages carry no feedback links."""
    feedback_link_days: float = Field(default=30.0, gt=0)
    """How long a one-click link in a customer message stays valid."""
    display_seconds: int = Field(default=86_400, ge=0)
    """How long a product shows a message on its own display (0: until dismissed)."""

    @field_validator("public_base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("use the API's public address, such as 'https://service.example.com'")
        return value.rstrip("/")


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class NoiseSettings(_Section):
    """Noise control between the rules and the case opener (see ``monitor.cases.noise``)."""

    flap_window_hours: float = Field(default=24.0, gt=0)
    flap_max_cases: int = Field(default=3, ge=1)
    """A device and problem that already had this many cases within the window is flapping:
    further alarms are logged, not opened."""
    inhibiting_problems: list[str] = ["offline", "silent"]
    """Problems that explain every other alarm of the device (and, many at once, of a site)."""
    offline_statuses: list[str] = ["offline", "silent"]
    """Device.status values that mean the device is not reporting properly."""
    inhibit_signal: str = "silence"
    """A device-level signal that, when above zero, marks the device as silent."""
    site_down_share: float = Field(default=0.5, gt=0, le=1)
    site_down_min_devices: int = Field(default=2, ge=1)
    fleet_share: float = Field(default=0.3, gt=0, le=1)
    """Share of a model's active devices deviating together that makes a fleet incident."""
    fleet_min_devices: int = Field(default=3, ge=2)
    fleet_window_minutes: float = Field(default=120.0, gt=0)
    """A device counts as deviating if its latest message within this window meets a rule's
    condition (whether or not the rule's duration has passed yet)."""
    fleet_active_hours: float = Field(default=24.0, gt=0)
    """A device counts as active for its model if it reported within this many hours."""
    fleet_onset_hours: float = Field(default=12.0, gt=0)
    """Devices deviate *together* only if they began to within this many hours of one
    another: a heat wave starts everywhere at once, while faults that merely overlap (one
    heat pump leaking since Monday, another since Thursday) are each a customer's case."""


class ApiSettings(_Section):
    enabled: bool = False
    """Serve the support API from the daemon too (``monitor api`` serves it on its own)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    token: SecretStr | None = None
    """Support routes require ``Authorization: Bearer <token>``; unset, the API is open and
    may only listen on a loopback address. At least 16 characters: a random secret."""

    @field_validator("token")
    @classmethod
    def _token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                "the token is shorter than 16 characters; use a random secret, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="json")


class Settings(BaseSettings):
    """Everything the daemon can be told. See ``docs/monitor.example.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid"
    )

    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    database: DatabaseSettings = DatabaseSettings()
    detect: DetectSettings = DetectSettings()
    rules: RulesSettings = RulesSettings()
    notify: NotifySettings = NotifySettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    noise: NoiseSettings = NoiseSettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    """Read ``path`` (TOML) plus environment overrides, or raise :class:`ConfigError`."""
    where = str(path) if path is not None else "<defaults and environment>"
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{where}: no such file. Fix: pass --config with an existing file.")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc}). Fix: correct the syntax.") from exc
    settings_type: type[Settings] = Settings
    if path is not None:
        # A subclass per file keeps the TOML path out of any global state.
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
        settings_type = type("FileSettings", (Settings,), {"model_config": config})
    try:
        return settings_type(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_explain(where, exc)) from exc


def _explain(where: str, exc: ValidationError) -> str:
    lines = [f"{where}: invalid configuration"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        got = error.get("input")
        fix = (
            "remove it (unknown key; check the spelling against docs/monitor.example.toml)"
            if error["type"] == "extra_forbidden"
            else error["msg"]
        )
        lines.append(f"  key '{key}' = {got!r}: {fix}")
    return "\n".join(lines)
