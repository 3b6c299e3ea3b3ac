"""What rules may know about a device besides its signals: its kind, model, site, owner.

The pipeline loads these once from the database and refreshes them now and then, so a rule
testing ``customer.language`` costs a dictionary lookup, not a query per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.store import Customer, Device

ATTRIBUTE_NAMES: dict[str, str] = {
    "kind": "product kind, e.g. water_pump",
    "model": "product model, e.g. WP-200",
    "site": "where the device is installed",
    "fw": "firmware version",
    "customer": "owner's customer id",
    "customer.language": "owner's language (en, de, ja …)",
    "customer.channel": "owner's preferred channel",
    "customer.timezone": "owner's IANA time zone",
    "timezone": "the device's time zone (its owner's; UTC when unknown)",
}
"""Every attribute a rule may test; the loader refuses other names."""

Attributes = Mapping[str, str]
AttributeLookup = Callable[[str], Attributes]
"""device id → its attributes (an empty mapping for a device nobody described)."""

_NONE: Attributes = {}


def no_attributes(_device_id: str) -> Attributes:
    return _NONE


class AttributeBook:
    """Every known device's attributes, read from the database in one query."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._by_device: dict[str, Attributes] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read devices and customers (after a manifest import, a new registration …)."""
        with Session(self._engine) as session:
            customers = {c.id: c for c in session.exec(select(Customer))}
            devices = list(session.exec(select(Device)))
        self._by_device = {
            d.id: _attributes_of(d, customers.get(d.customer_id or "")) for d in devices
        }

    def get(self, device_id: str) -> Attributes:
        return self._by_device.get(device_id, _NONE)


def _attributes_of(device: Device, customer: Customer | None) -> Attributes:
    values = {
        "kind": device.kind,
        "model": device.model,
        "site": device.site or "",
        "fw": device.fw or "",
        "timezone": customer.timezone if customer is not None else "UTC",
    }
    if customer is not None:
        values |= {
            "customer": customer.id,
            "customer.language": customer.language,
            "customer.channel": customer.channel,
            "customer.timezone": customer.timezone,
        }
    return {k: v for k, v in values.items() if v}
