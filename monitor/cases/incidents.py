"""Engineering's side of a fleet incident: acknowledge it, resolve it."""

from __future__ import annotations

from sqlmodel import Session

from monitor.store.models import FleetIncident


class IncidentError(ValueError):
    """An incident that does not exist or cannot make the requested move."""


def update_incident(
    session: Session, incident_id: int, status: str, *, actor: str, note: str, now: float
) -> FleetIncident:
    """Move an incident to "acknowledged" or "resolved" (the caller commits).

    A resolved incident no longer takes in alarms: the next fleet-wide pattern opens a new one.
    """
    if status not in ("acknowledged", "resolved"):
        raise IncidentError(f"status {status!r}: use 'acknowledged' or 'resolved'")
    incident = session.get(FleetIncident, incident_id)
    if incident is None:
        raise IncidentError(f"no fleet incident {incident_id}")
    if incident.status == "resolved":
        raise IncidentError(f"fleet incident {incident_id} is already resolved")
    incident.status = status
    if note:
        incident.note = note
    if status == "resolved":
        incident.resolved_at = now
        incident.resolved_by = actor
    session.add(incident)
    return incident
