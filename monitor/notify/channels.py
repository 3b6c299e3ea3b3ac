"""The names of the channels a notification can take, and which ones a customer can use."""

from __future__ import annotations

from monitor.store import Customer

EMAIL = "email"
APPRISE = "apprise"
"""SMS, chat and push through the customer's Apprise URLs."""
DISPLAY = "display"
"""The product's own display, via its MQTT ``commands`` topic."""
WEBHOOK = "webhook"
"""Support's helpdesk webhook."""
SUPPORT_APPRISE = "support_apprise"
"""Support's chat (or SMS) through ``notify.support_apprise_urls``."""

CUSTOMER_CHANNELS = (EMAIL, APPRISE, DISPLAY)
SUPPORT_CHANNELS = (WEBHOOK, SUPPORT_APPRISE)


def customer_channels(customer: Customer) -> list[str]:
    """The channels ``customer`` chose and can be reached on, in their order, without repeats.

    ``channels`` wins over the single ``channel``; a channel without an address (email
    without an email address, apprise without URLs) is skipped.
    """
    chosen = customer.channels or [customer.channel]
    usable = {EMAIL: bool(customer.email), APPRISE: bool(customer.apprise_urls), DISPLAY: True}
    return [name for name in dict.fromkeys(chosen) if usable.get(name, False)]
