"""The ``monitor`` command line: devices import, cases list, clear start-up errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlmodel import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import Case, Customer, Device, open_database

runner = CliRunner()


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


def test_devices_import_then_cases_list_as_json(tmp_path: Path, database_url: str) -> None:
    manifest = tmp_path / "devices.json"
    manifest.write_text(
        json.dumps(
            [
                {"device_id": "wp-1", "model": "WP-200", "customer_id": "c1", "language": "ja"},
                {"device_id": "wp-2", "model": "WP-200", "customer_id": "c1"},
            ]
        )
    )
    config = config_for(tmp_path, database_url)
    result = runner.invoke(app, ["devices", "import", str(manifest), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "imported 2 devices and 1 customers" in result.output
    engine = open_database(database_url)
    with Session(engine) as session:
        customer = session.get(Customer, "c1")
        assert customer is not None
        assert customer.language == "ja"
        session.add(
            Case(
                device_id="wp-1",
                problem="degradation",
                rule="r",
                severity="warning",
                opened_at=1.8e9,
                created_wall=time.time(),
            )
        )
        session.commit()
        assert session.get(Device, "wp-2") is not None
    result = runner.invoke(app, ["cases", "list", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["device_id"], r["problem"], r["status"]) for r in rows] == [
        ("wp-1", "degradation", "open")
    ]


def test_manifest_row_without_device_id_is_refused_with_its_row(
    tmp_path: Path, sqlite_url: str
) -> None:
    manifest = tmp_path / "devices.csv"
    manifest.write_text("device_id,model\nwp-1,WP-200\n,WP-200\n")
    config = config_for(tmp_path, sqlite_url)
    result = runner.invoke(app, ["devices", "import", str(manifest), "--config", str(config)])
    assert result.exit_code == 1
    assert "row 2 has no device_id" in result.output


def test_bad_config_stops_start_up_naming_key_and_fix(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[mqtt]\nport = "x"\n')
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "mqtt.port" in result.output
