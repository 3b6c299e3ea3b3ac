"""Importing devices and their owners from a manifest file (CSV or JSON).

Columns / keys: ``device_id,kind,model,customer_id,customer_name,email,phone,language,
channel,timezone,site,channels,apprise_urls,quiet_hours``. Only ``device_id`` is required.
Importing again updates in place.

``channels`` lists the customer's channels in order (``email``, ``apprise``, ``display``),
``apprise_urls`` their Apprise URLs; in CSV both are separated by spaces or ``;``, in JSON
they may also be lists. ``quiet_hours`` is local time such as ``22:00-07:00``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.store.models import Customer, Device

REQUIRED = ("device_id",)
CUSTOMER_CHANNELS = ("email", "apprise", "display")
_QUIET_HOURS = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d-([01]?\d|2[0-3]):[0-5]\d$")


class ManifestError(Exception):
    """The manifest cannot be imported; the message names the file, the row and the fix."""


def read_manifest(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"{path}: expected a JSON list of objects, one per device")
    else:
        rows = list(csv.DictReader(text.splitlines()))
    clean = [{str(k): _text(v) for k, v in r.items()} for r in rows]
    for number, row in enumerate(clean, start=1):
        if not row.get("device_id"):
            raise ManifestError(
                f"{path}: row {number} has no device_id. Fix: every row needs a device_id."
            )
        _check_preferences(path, number, row)
    return clean


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(item).strip() for item in value)
    return str(value).strip()


def _words(text: str) -> list[str]:
    return text.replace(";", " ").split()


def _check_preferences(path: Path, number: int, row: dict[str, str]) -> None:
    unknown = [c for c in _words(row.get("channels", "")) if c not in CUSTOMER_CHANNELS]
    if unknown:
        raise ManifestError(
            f"{path}: row {number}: unknown channel(s) {', '.join(unknown)}. "
            f"Fix: use {', '.join(CUSTOMER_CHANNELS)}, separated by spaces or ';'."
        )
    quiet = row.get("quiet_hours", "").replace(" ", "")
    if quiet and not _QUIET_HOURS.match(quiet):
        raise ManifestError(
            f"{path}: row {number}: quiet_hours {quiet!r} not understood. "
            "Fix: local times as HH:MM-HH:MM, such as 22:00-07:00, or leave it empty."
        )


def import_manifest(engine: Engine, path: Path) -> tuple[int, int]:
    """Upsert the manifest's customers and devices; returns (devices, customers)."""
    rows = read_manifest(path)
    customers: set[str] = set()
    with Session(engine) as session:
        for row in rows:
            customer_id = row.get("customer_id") or None
            if customer_id and customer_id not in customers:
                customers.add(customer_id)
                # Updated in place, so what the monitor keeps about the customer
                # (when they were last asked for an NPS score) survives a re-import.
                customer = session.get(Customer, customer_id) or Customer(id=customer_id)
                customer.name = row.get("customer_name", "")
                customer.email = row.get("email") or None
                customer.phone = row.get("phone") or None
                customer.language = row.get("language") or "en"
                customer.channel = row.get("channel") or "email"
                customer.timezone = row.get("timezone") or "UTC"
                customer.channels = _words(row.get("channels", ""))
                customer.apprise_urls = _words(row.get("apprise_urls", ""))
                customer.quiet_hours = row.get("quiet_hours", "").replace(" ", "")
                session.add(customer)
        session.flush()
        for row in rows:
            device = session.get(Device, row["device_id"]) or Device(id=row["device_id"])
            device.kind = row.get("kind") or device.kind
            device.model = row.get("model") or device.model
            device.customer_id = row.get("customer_id") or device.customer_id
            device.site = row.get("site") or device.site
            session.add(device)
        session.commit()
    return len(rows), len(customers)
