"""The email channel: one rendered outbox payload → one SMTP transaction (aiosmtplib)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate
from typing import Any

import aiosmtplib

from monitor.config import SmtpSettings
from monitor.notify.errors import DeliveryError


def build_message(
    sender: str, recipient: str, payload: Mapping[str, Any], language: str, now: float
) -> EmailMessage:
    """A text email with an HTML alternative, carrying the payload's fixed ``Message-ID``."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = payload["message_id"]
    # RFC 3834: tells auto-responders (out-of-office) not to answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    if "case_id" in payload:
        message["X-Monitor-Case"] = str(payload["case_id"])
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    if "plot_png_base64" in payload:
        _attach_inline_plot(message, payload["plot_png_base64"], payload["plot_cid"])
    # After the body: set_content() drops every Content-* header set before it.
    message["Content-Language"] = language
    return message


def _attach_inline_plot(message: EmailMessage, png_base64: str, cid: str) -> None:
    """Put the PNG next to the HTML (multipart/related), where ``<img src="cid:…">`` finds it."""
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, MIMEPart)
    html.add_related(
        base64.b64decode(png_base64),
        maintype="image",
        subtype="png",
        cid=f"<{cid}>",
        filename="evidence.png",
        disposition="inline",
    )


async def send_email(
    settings: SmtpSettings, recipient: str, payload: Mapping[str, Any], language: str, now: float
) -> None:
    """Deliver one email, or raise :class:`DeliveryError` (permanent if the server refused it)."""
    message = build_message(settings.sender, recipient, payload, language, now)
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.use_tls,
            start_tls=settings.starttls,
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refusal.code for refusal in exc.recipients]
        raise DeliveryError(
            f"SMTP refused recipient {recipient}: {exc}", permanent=all(c >= 500 for c in codes)
        ) from exc
    except aiosmtplib.SMTPDataError as exc:
        # 5xx after DATA: the server rejected this message's content; resending the same
        # bytes gets the same answer. 4xx is the server asking us to come back later.
        raise DeliveryError(
            f"SMTP rejected the message: {exc.code} {exc.message}", permanent=exc.code >= 500
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        where = f"{settings.host}:{settings.port}"
        raise DeliveryError(f"SMTP server {where} unavailable: {exc!r}") from exc
