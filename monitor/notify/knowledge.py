"""Self-help tips: what a customer can do right now, per problem, product kind and language.

Tips are Markdown files in ``knowledge/<problem>/<kind>.<language>.md``. The most specific
file wins: this product kind, then ``generic`` for the problem, then ``generic/generic``; in
the customer's language first, then in English. A new tip is one new file.

>>> "strainer" in self_help("degradation", "water_pump", "en")
True
>>> self_help("no_such_problem", "toaster", "xx") == self_help("generic", "generic", "en")
True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from monitor.notify.render import FALLBACK_LANGUAGE, template_language

KNOWLEDGE_DIR = Path(__file__).resolve().parent / "knowledge"
GENERIC = "generic"


def self_help(problem: str, kind: str, language: str | None) -> str:
    """The tip for ``problem`` on a product of ``kind``, in ``language`` if there is one."""
    return _tip(problem, kind, template_language(language))


@cache
def _tip(problem: str, kind: str, language: str) -> str:
    for path in _candidates(problem, kind, language):
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    return ""


def _candidates(problem: str, kind: str, language: str) -> list[Path]:
    places = [(problem, kind), (problem, GENERIC), (GENERIC, GENERIC)]
    languages = dict.fromkeys((language, FALLBACK_LANGUAGE))
    return [
        KNOWLEDGE_DIR / folder / f"{name}.{lang}.md"
        for lang in languages
        for folder, name in places
        # A problem or kind with a path separator must not reach outside the knowledge base.
        if "/" not in folder + name and ".." not in folder + name
    ]
