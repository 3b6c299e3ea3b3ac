"""What support and engineering are told on their own channels, and fleet incidents.

Support has two channels (see :mod:`monitor.notify.channels`): the helpdesk webhook, which
gets a JSON document, and the team's chat through ``notify.support_apprise_urls``, which
gets a short text rendered from ``templates/support/<template>.en.txt``. Support has no
quiet hours: its rows are due at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from monitor.config import NotifySettings
from monitor.notify.channels import SUPPORT_APPRISE, WEBHOOK
from monitor.notify.render import render_short
from monitor.store import Outbox
from monitor.store.models import FleetIncident

log = logging.getLogger(__name__)

INCIDENT_OPENED = "incident_opened"


def support_rows(
    purpose: str,
    body: dict[str, Any],
    *,
    template: str,
    settings: NotifySettings,
    now: float,
    case_id: int | None = None,
    incident_id: int | None = None,
    skip_channel: str | None = None,
) -> list[Outbox]:
    """The rows telling support ``body`` (about ``case_id`` or ``incident_id``): one on the
    webhook if ``support_webhook.url`` is set, one on the chat if ``support_apprise_urls``
    are, except on ``skip_channel``. ``template`` renders the chat text from ``body``."""
    rows: list[Outbox] = []
    subject = {"case_id": case_id, "incident_id": incident_id}
    if settings.support_webhook.url and skip_channel != WEBHOOK:
        rows.append(_row(WEBHOOK, purpose, settings.support_webhook.url, body, now=now, **subject))
    if settings.support_apprise_urls and skip_channel != SUPPORT_APPRISE:
        rendered = render_short("support", template, "en", body)
        message = {"title": rendered.title, "body": rendered.body}
        # The URLs are read from the settings when sending: they hold credentials.
        rows.append(_row(SUPPORT_APPRISE, purpose, "support", message, now=now, **subject))
    return rows


def enqueue_incident_opened(
    session: Session,
    incident: FleetIncident,
    settings: NotifySettings,
    now: float,
    *,
    deviating: int,
) -> list[Outbox]:
    """Add (without committing) the rows telling engineering that ``incident`` opened, on
    the support channels; never anything to a customer. ``deviating``: how many devices of
    the model deviated together when it opened. An incident already announced gets none."""
    if incident.id is None:
        raise ValueError("incident has no id yet: flush the session before announcing it")
    announced = select(Outbox.id).where(
        col(Outbox.incident_id) == incident.id, col(Outbox.purpose) == INCIDENT_OPENED
    )
    if session.exec(announced.limit(1)).first() is not None:
        return []
    body = {
        "event": INCIDENT_OPENED,
        "incident_id": incident.id,
        "model": incident.model,
        "problem": incident.problem,
        "status": incident.status,
        "opened_at": iso(incident.opened_at),
        "opened_at_epoch": incident.opened_at,
        "deviating_devices": deviating,
        "active_devices": incident.active_devices,
        "devices": list(incident.devices),
        "rules": list(incident.rules),
    }
    rows = support_rows(
        INCIDENT_OPENED,
        body,
        template=INCIDENT_OPENED,
        settings=settings,
        now=now,
        incident_id=incident.id,
    )
    if not rows:
        log.warning(
            "fleet incident opened but no support channel is configured to tell engineering",
            extra={"incident_id": incident.id, "model": incident.model},
        )
    session.add_all(rows)
    return rows


def iso(epoch: float | None) -> str | None:
    """``epoch`` as an ISO 8601 UTC time ("…Z"), as support's JSON documents carry times."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def _row(
    channel: str,
    purpose: str,
    recipient: str,
    payload: dict[str, Any],
    *,
    now: float,
    case_id: int | None,
    incident_id: int | None,
) -> Outbox:
    return Outbox(
        case_id=case_id,
        incident_id=incident_id,
        channel=channel,
        purpose=purpose,
        recipient=recipient,
        language="en",
        payload=payload,
        next_attempt_at=now,
        created_wall=now,
    )
