"""Rendering one customer message into the outbox row of one channel.

Messages are rendered when they are queued, so that what is delivered (perhaps hours later,
after an SMTP outage or the customer's quiet hours) is what the case looked like then, and a
template error surfaces while the case is opened rather than in the dispatcher's retry loop.

Every customer row carries its ``quiet`` window (unless the problem is critical): the
dispatcher holds a row that falls due inside it, so not even a retry reaches the customer
at 3 a.m.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from monitor.config import NotifySettings
from monitor.notify.channels import APPRISE, DISPLAY, EMAIL
from monitor.notify.links import LinkMaker
from monitor.notify.quiet_hours import quiet_until
from monitor.notify.render import render_email, render_short
from monitor.store import Case, Customer, Device, Outbox

URGENT_SEVERITIES = frozenset({"critical"})
"""Severities that may wake a customer: they ignore quiet hours."""


@dataclass(frozen=True)
class Addressee:
    """Who a customer message goes to, and what it is about."""

    case: Case
    case_id: int
    device: Device
    customer: Customer


def customer_row(
    channel: str,
    purpose: str,
    to: Addressee,
    *,
    context: dict[str, Any],
    settings: NotifySettings,
    now: float,
    plot: bytes | None = None,
) -> Outbox:
    """The outbox row delivering ``purpose`` to ``to`` on ``channel``, rendered now.

    ``context`` is the template context; the row is due at ``now``, or when the customer's
    quiet hours end if ``now`` is inside them and the problem is not critical.
    """
    # Reminders and an urgent escalation repeat the first message (rendered for the case now).
    template = "case_opened" if purpose.startswith(("reminder", "case_escalated")) else purpose
    customer = to.customer
    if channel == EMAIL:
        assert customer.email is not None
        recipient = customer.email
        language, payload = _email_payload(template, to, context, settings, plot)
    elif channel == APPRISE:
        recipient = " ".join(customer.apprise_urls)
        rendered = render_short(APPRISE, template, customer.language, context)
        language, payload = rendered.language, {"title": rendered.title, "body": rendered.body}
    elif channel == DISPLAY:
        recipient = to.device.id
        rendered = render_short(DISPLAY, template, customer.language, context)
        language = rendered.language
        payload = display_command(to, rendered.title, rendered.body, language, settings)
    else:
        raise ValueError(f"unknown customer channel {channel!r}")
    quiet = to.case.severity not in URGENT_SEVERITIES and bool(customer.quiet_hours)
    if quiet:
        payload["quiet"] = {"hours": customer.quiet_hours, "timezone": customer.timezone}
    due = (quiet_until(customer.quiet_hours, customer.timezone, now) if quiet else None) or now
    return Outbox(
        case_id=to.case_id,
        channel=channel,
        purpose=purpose,
        recipient=recipient,
        language=language,
        payload=payload,
        next_attempt_at=due,
        created_wall=now,
    )


def link_maker(to: Addressee, settings: NotifySettings, now: float) -> LinkMaker:
    """The signed one-click links for a message to ``to`` sent at ``now``."""
    return LinkMaker(
        base_url=settings.public_base_url,
        secret=settings.feedback_secret,
        case_id=to.case_id,
        customer_id=to.customer.id,
        expires=now + settings.feedback_link_days * 86400.0,
    )


def display_command(
    to: Addressee, title: str, text: str, language: str, settings: NotifySettings
) -> dict[str, Any]:
    """The JSON published on the device's ``commands`` topic (see docs/device-contract.md)."""
    return {
        "command": "show_message",
        "case_id": to.case_id,
        "problem": to.case.problem,
        "severity": to.case.severity,
        "language": language,
        "title": title,
        "text": text,
        "show_seconds": settings.display_seconds,
    }


def _email_payload(
    template: str,
    to: Addressee,
    context: dict[str, Any],
    settings: NotifySettings,
    plot: bytes | None,
) -> tuple[str, dict[str, Any]]:
    domain = settings.smtp.sender.rpartition("@")[2] or "localhost"
    # The random part keeps a fresh database's case 1 from reusing another database's IDs,
    # which mail providers would drop as duplicates.
    tag = f"case-{to.case_id}.{template}.{secrets.token_hex(6)}@{domain}"
    plot_cid = f"plot.{tag}" if plot is not None else None
    rendered = render_email(template, to.customer.language, {**context, "plot_cid": plot_cid})
    payload: dict[str, Any] = {
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        # Fixed now and reused on every attempt, so a duplicate delivery is recognisable.
        "message_id": f"<{tag}>",
        "case_id": to.case_id,
    }
    if plot is not None:
        payload["plot_png_base64"] = base64.b64encode(plot).decode("ascii")
        payload["plot_cid"] = plot_cid
    return rendered.language, payload
