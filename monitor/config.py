"""The monitor's configuration: one typed object, loaded and validated once at start-up.

Values come from a TOML file, then from environment variables named
``MONITOR_<SECTION>__<KEY>`` (for example ``MONITOR_MQTT__PORT=1884``), which win.
A wrong value stops start-up with a :class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
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


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


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
