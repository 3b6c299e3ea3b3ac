"""Importing devices and their owners from a manifest file (CSV or JSON).

Columns / keys: ``device_id,kind,model,customer_id,customer_name,email,phone,language,
channel,timezone,site``. Only ``device_id`` is required. Importing again updates in place.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.store.models import Customer, Device

REQUIRED = ("device_id",)


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
    clean = [{str(k): "" if v is None else str(v).strip() for k, v in r.items()} for r in rows]
    for number, row in enumerate(clean, start=1):
        if not row.get("device_id"):
            raise ManifestError(
                f"{path}: row {number} has no device_id. Fix: every row needs a device_id."
            )
    return clean


def import_manifest(engine: Engine, path: Path) -> tuple[int, int]:
    """Upsert the manifest's customers and devices; returns (devices, customers)."""
    rows = read_manifest(path)
    customers: set[str] = set()
    with Session(engine) as session:
        for row in rows:
            customer_id = row.get("customer_id") or None
            if customer_id and customer_id not in customers:
                customers.add(customer_id)
                session.merge(
                    Customer(
                        id=customer_id,
                        name=row.get("customer_name", ""),
                        email=row.get("email") or None,
                        phone=row.get("phone") or None,
                        language=row.get("language") or "en",
                        channel=row.get("channel") or "email",
                        timezone=row.get("timezone") or "UTC",
                    )
                )
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
