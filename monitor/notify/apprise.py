"""The Apprise channel: one short message → the recipient's Apprise URLs (SMS, chat, push).

Apprise is the library that knows the services (``mailto://``, ``tgram://``, ``slack://``,
``twilio://``, ``json://`` …); this module only turns its answer into a
:class:`DeliveryError` the dispatcher can retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apprise

from monitor.notify.errors import DeliveryError


async def send_apprise(urls: Sequence[str], payload: Mapping[str, Any], time_limit: float) -> None:
    """Send ``payload`` (``title``, ``body``) to every URL in ``urls``, or raise.

    A URL Apprise cannot read is a permanent failure (retrying cannot fix it); a service
    that did not accept the message is retried. Errors name the services with their
    credentials hidden, as Apprise prints them.
    """
    notifier = apprise.Apprise()
    unreadable = [index for index, url in enumerate(urls) if not notifier.add(url)]
    if unreadable or not urls:
        positions = ", ".join(str(index + 1) for index in unreadable) or "none given"
        raise DeliveryError(f"apprise URL(s) not understood: {positions}", permanent=True)
    result = await notifier.async_notify(
        body=payload["body"], title=payload.get("title", ""), timeout=time_limit
    )
    if not result:
        failed = [f"{r.name} {r.url}: {r.status.name}" for r in result.results if not r]
        raise DeliveryError("apprise delivery failed: " + ("; ".join(failed) or repr(result)))
