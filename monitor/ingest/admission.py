"""Admission: the checks that need memory of each device (order, duplicates, registration)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from monitor.ingest.decode import Decoded, RawMessage, Reason, Rejection, StatusChange, Telemetry


@dataclass(slots=True)
class KnownDevice:
    """What admission remembers of a device between messages."""

    model: str = ""
    last_ts: float | None = None
    last_seq: int | None = None
    fw: str | None = None
    status: str = "unknown"


@dataclass(slots=True)
class Admitted:
    """One batch after admission, split by what happens to each part next."""

    telemetry: list[Telemetry] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    new_devices: dict[str, Telemetry] = field(default_factory=dict)
    """First message of each device seen for the first time (to register it)."""
    changed_fw: dict[str, str] = field(default_factory=dict)


class Admission:
    """Accepts each device's messages in order, once, and only from known devices if required."""

    def __init__(self, known: dict[str, KnownDevice], require_registration: bool) -> None:
        self.known = known
        self._require_registration = require_registration

    def run(self, batch: list[Decoded]) -> Admitted:
        out = Admitted()
        for item in batch:
            if isinstance(item, Rejection):
                out.rejections.append(item)
            elif isinstance(item, StatusChange):
                self._status(item, out)
            else:
                self._telemetry(item, out)
        return out

    def _status(self, item: StatusChange, out: Admitted) -> None:
        device = self.known.get(item.device_id)
        if device is None:
            # A retained status of a device we have never heard from says nothing to act on.
            return
        device.status = item.status
        out.statuses.append(item)

    def _telemetry(self, msg: Telemetry, out: Admitted) -> None:
        device = self.known.get(msg.device_id)
        if device is None:
            if self._require_registration:
                out.rejections.append(_reject(msg, Reason.UNKNOWN_DEVICE, "not in the manifest"))
                return
            device = self.known[msg.device_id] = KnownDevice(model=msg.model or "")
            out.new_devices[msg.device_id] = msg
        if device.last_ts is not None and msg.ts <= device.last_ts:
            same = msg.ts == device.last_ts and (msg.seq is None or msg.seq == device.last_seq)
            reason = Reason.DUPLICATE if same else Reason.OUT_OF_ORDER
            out.rejections.append(
                _reject(msg, reason, f"ts {msg.ts:.3f} not after last {device.last_ts:.3f}")
            )
            return
        device.last_ts, device.last_seq = msg.ts, msg.seq
        if msg.fw is not None and msg.fw != device.fw:
            if device.fw is not None:
                out.changed_fw[msg.device_id] = msg.fw
            device.fw = msg.fw
        if msg.model and not device.model:
            device.model = msg.model
        if not msg.model and device.model:
            msg = dataclasses.replace(msg, model=device.model)
        out.telemetry.append(msg)


def _reject(msg: Telemetry, reason: Reason, detail: str) -> Rejection:
    if msg.source is None:
        raw = RawMessage(f"?/{msg.device_id}/telemetry", b"", msg.received)
    else:
        raw = msg.source.raw()
    return Rejection(raw, reason, detail, msg.device_id)
