"""What ingest writes to the database: parked messages, new devices, statuses, progress."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.ingest.admission import Admitted, KnownDevice
from monitor.metrics import REJECTED
from monitor.store import Device, ParkedMessage

log = logging.getLogger(__name__)


def load_known_devices(engine: Engine) -> dict[str, KnownDevice]:
    """Admission's memory as it was saved, so order checks survive a restart."""
    with Session(engine) as session:
        return {
            d.id: KnownDevice(d.model, d.last_ts, d.last_seq, d.fw, d.status)
            for d in session.exec(select(Device))
        }


def record_admission(session: Session, admitted: Admitted, now: float) -> None:
    """Park rejections, register new devices, store status and firmware changes."""
    for rejection in admitted.rejections:
        session.add(
            ParkedMessage(
                received_wall=rejection.message.received or now,
                topic=rejection.message.topic,
                device_id=rejection.device_id,
                reason=rejection.reason.value,
                detail=rejection.detail[:500],
                payload=rejection.message.payload,
            )
        )
    if admitted.new_devices:
        existing = set(
            session.exec(select(Device.id).where(col(Device.id).in_(admitted.new_devices)))
        )
        for device_id, first in admitted.new_devices.items():
            if device_id not in existing:
                session.add(
                    Device(id=device_id, model=first.model or "", fw=first.fw, registered_wall=now)
                )
        session.flush()
    changes: dict[str, dict[str, str]] = {}
    for status in admitted.statuses:
        changes.setdefault(status.device_id, {})["status"] = status.status
    for device_id, fw in admitted.changed_fw.items():
        changes.setdefault(device_id, {})["fw"] = fw
    for device_id, values in changes.items():
        device = session.get(Device, device_id)
        if device is not None:
            for key, value in values.items():
                setattr(device, key, value)


def count_and_log(admitted: Admitted) -> None:
    """After the batch is committed: count and log its rejections and new devices."""
    for rejection in admitted.rejections:
        REJECTED.labels(rejection.reason.value).inc()
    for device_id in admitted.new_devices:
        log.info("registered device on first message", extra={"device_id": device_id})
    if admitted.rejections:
        _log_rejections(admitted)


def _log_rejections(admitted: Admitted) -> None:
    # One line per reason and batch: a device spamming garbage must not flood the log.
    by_reason: dict[str, list[str]] = {}
    for rejection in admitted.rejections:
        by_reason.setdefault(rejection.reason.value, []).append(rejection.device_id or "?")
    for reason, devices in by_reason.items():
        log.warning(
            "rejected messages",
            extra={
                "reason": reason,
                "count": len(devices),
                "devices": sorted(set(devices))[:10],
                "example": next(r.detail for r in admitted.rejections if r.reason.value == reason),
            },
        )
