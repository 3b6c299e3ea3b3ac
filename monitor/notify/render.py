"""Rendering customer messages from the Jinja2 templates in ``templates/``, per language.

Templates are named ``<channel>/<purpose>.<language>.<part>``; a language without its own
templates falls back to English, so a new language is a few new files and nothing else.
Email has three parts (subject, text, HTML); the short channels (``apprise`` for SMS, chat and
push, ``display`` for the product's own screen) have one file that sets ``title`` and
``body``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

LANGUAGES = ("en", "de", "ja")
"""Languages with their own templates; anything else is answered in English."""

FALLBACK_LANGUAGE = "en"

_OPTIONAL: dict[str, Any] = {
    "reminder": False,
    "tip": "",
    "helpful_yes": None,
    "helpful_no": None,
    "plot_cid": None,
    "nps_links": [],
}
"""Context the templates can do without; everything else must be given (StrictUndefined)."""

_ENVIRONMENT = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    # Customer names and device models end up in HTML: escape everything rendered into it.
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class RenderedEmail:
    """One email's three parts, in the language it was rendered in."""

    language: str
    subject: str
    text: str
    html: str


def template_language(language: str | None) -> str:
    """The template language for a customer's ``language`` ("de-AT" → "de", "xx" → "en")."""
    base = (language or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return base if base in LANGUAGES else FALLBACK_LANGUAGE


def render_email(purpose: str, language: str | None, context: dict[str, Any]) -> RenderedEmail:
    """Render ``email/<purpose>.<lang>.{subject.txt,txt,html}`` with ``context``.

    ``language`` in the context is set to the language actually rendered (for ``<html lang>``).
    """
    lang = template_language(language)
    stem = f"email/{purpose}.{lang}"
    context = {**_OPTIONAL, **context, "language": lang}
    subject = _ENVIRONMENT.get_template(f"{stem}.subject.txt").render(context)
    return RenderedEmail(
        language=lang,
        # A header must be one line: a newline in a template or a value must not become
        # a second header.
        subject=" ".join(subject.split()),
        text=_ENVIRONMENT.get_template(f"{stem}.txt").render(context).strip() + "\n",
        html=_ENVIRONMENT.get_template(f"{stem}.html").render(context).strip() + "\n",
    )


@dataclass(frozen=True)
class RenderedShort:
    """A title and a plain-text body for a short channel, in the language rendered."""

    language: str
    title: str
    body: str


def render_short(
    channel: str, purpose: str, language: str | None, context: dict[str, Any]
) -> RenderedShort:
    """Render ``<channel>/<purpose>.<lang>.txt`` and return the ``title`` and ``body`` it sets."""
    lang = template_language(language)
    template = _ENVIRONMENT.get_template(f"{channel}/{purpose}.{lang}.txt")
    module = template.make_module({**_OPTIONAL, **context, "language": lang})
    exported = module.__dict__  # the values the template set at its top level
    title, body = str(exported["title"]), str(exported["body"])
    return RenderedShort(language=lang, title=" ".join(title.split()), body=body.strip() + "\n")
