"""Configuration: one validated object; a wrong value names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_documented_example_config_loads_with_the_defaults() -> None:
    settings = load_settings(ROOT / "docs" / "monitor.example.toml")
    assert settings.model_dump() == load_settings().model_dump()


def test_wrong_value_names_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[mqtt]\nport = "eighteen"\ntopic_prefix = "devices/#"\n[notfy]\nx = 1\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    text = str(error.value)
    assert str(path) in text
    assert "key 'mqtt.port'" in text
    assert "key 'mqtt.topic_prefix'" in text
    assert "no '#'" in text
    assert "key 'notfy'" in text
    assert "unknown key" in text


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text("[mqtt]\nport = 1884\n")
    monkeypatch.setenv("MONITOR_MQTT__PORT", "1999")
    monkeypatch.setenv("MONITOR_DATABASE__URL", "postgresql://u@h/db")
    settings = load_settings(path)
    assert settings.mqtt.port == 1999
    assert settings.database.url == "postgresql://u@h/db"


def test_broken_toml_and_missing_file_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
