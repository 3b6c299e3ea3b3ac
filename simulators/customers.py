"""Fictional owners for simulated devices: names, contact details, language, site."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.weather import SITES, Site

_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("Alex Morgan", "Sam Taylor", "Jordan Lee", "Chris Evans", "Pat Walker", "Robin Hughes"),
    "de": (
        "Jonas Müller",
        "Lena Schmidt",
        "Felix Wagner",
        "Anna Becker",
        "Paul Hoffmann",
        "Mia Schulz",
    ),
    "ja": ("佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 健太", "伊藤 由美", "渡辺 翔"),
}
_PHONE_PREFIX = {"en": "+44 20 7946 ", "de": "+49 30 5555 ", "ja": "+81 3 5555 "}
_LANGUAGE_TZ = {"en": "Europe/London", "de": "Europe/Berlin", "ja": "Asia/Tokyo"}


@dataclass(frozen=True)
class Customer:
    """The owner of one device and how they want to be contacted."""

    customer_id: str
    name: str
    email: str
    phone: str
    language: str
    channel: str
    site: Site
    quiet_hours: str = ""
    """No messages in these local hours unless critical ("22:00-07:00"); empty: any time."""


def make_customer(rng: np.random.Generator, number: int) -> Customer:
    """An owner for device number ``number``: a mix of English, German and Japanese speakers."""
    language = str(rng.choice(["en", "de", "ja"], p=[0.5, 0.3, 0.2]))
    sites = [s for s in SITES if s.timezone == _LANGUAGE_TZ[language]]
    site = sites[int(rng.integers(len(sites)))]
    names = _NAMES[language]
    return Customer(
        customer_id=f"cust-{number:04d}",
        name=names[int(rng.integers(len(names)))],
        email=f"owner-{number:04d}@example.com",
        phone=f"{_PHONE_PREFIX[language]}{number % 10000:04d}",
        language=language,
        channel="email",
        site=site,
        # By number rather than drawn, so that fleets of earlier versions stay the same.
        quiet_hours="" if number % 3 == 0 else "22:00-07:00",
    )
