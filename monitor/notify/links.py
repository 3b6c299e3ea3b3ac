"""The customer's one-click links: signed, expiring tokens for answers and visit requests.

A token is an itsdangerous ``URLSafeSerializer`` signature (HMAC-SHA1 keyed by
``notify.feedback_secret``, salt ``monitor-feedback``) over a small JSON object: the case,
the customer, what the click means (a survey question and its score, or ``visit``) and an
expiry on the monitor's clock. The expiry is in the signed data rather than itsdangerous's
own timestamp so that a simulation driving the clock gets the same answers as live use.

>>> claim = LinkClaim(case_id=7, customer_id="c-1", question="helpful", score=1, expires=100.0)
>>> read_token("k", make_token("k", claim), now=50.0) == claim
True
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

SCALES: dict[str, tuple[int, int]] = {
    "helpful": (0, 1),
    "csat": (1, 5),
    "ces": (1, 7),
    "nps": (0, 10),
}
"""Survey questions and their lowest and highest score."""

VISIT = "visit"
_SALT = "monitor-feedback"


class LinkError(ValueError):
    """A link that was tampered with, has expired or asks something unknown."""


@dataclass(frozen=True)
class LinkClaim:
    """What a signed link says: this customer, about this case, means this."""

    case_id: int
    customer_id: str | None
    question: str
    score: int | None
    expires: float


def make_token(secret: str, claim: LinkClaim) -> str:
    """The URL-safe signed token for ``claim``."""
    data = {
        "c": claim.case_id,
        "u": claim.customer_id,
        "q": claim.question,
        "s": claim.score,
        "x": round(claim.expires),
    }
    token = URLSafeSerializer(secret, salt=_SALT).dumps(data)
    return token if isinstance(token, str) else token.decode()


def read_token(secret: str, token: str, now: float) -> LinkClaim:
    """The claim in ``token``, or :class:`LinkError` if it is forged, expired or malformed."""
    try:
        data = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except BadSignature as exc:
        raise LinkError("this link is not valid (it may have been altered)") from exc
    try:
        claim = LinkClaim(
            case_id=int(data["c"]),
            customer_id=None if data["u"] is None else str(data["u"]),
            question=str(data["q"]),
            score=None if data["s"] is None else int(data["s"]),
            expires=float(data["x"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("this link is not valid (unexpected content)") from exc
    if now > claim.expires:
        raise LinkError("this link has expired; please contact us instead")
    if claim.question != VISIT:
        low, high = SCALES.get(claim.question, (1, 0))
        if claim.score is None or not low <= claim.score <= high:
            raise LinkError(f"this link asks an unknown question {claim.question!r}")
    return claim


@dataclass(frozen=True)
class LinkMaker:
    """Builds the links of one customer message; ``secret`` None builds none."""

    base_url: str
    secret: str | None
    case_id: int
    customer_id: str | None
    expires: float

    def answer(self, question: str, score: int) -> str | None:
        """The link that records ``score`` for ``question`` on this case."""
        return self._link("feedback", question, score)

    def scale(self, question: str) -> list[tuple[int, str]]:
        """One (score, link) per score of ``question``'s scale; empty without a secret."""
        low, high = SCALES[question]
        links = [(score, self.answer(question, score)) for score in range(low, high + 1)]
        return [(score, link) for score, link in links if link is not None]

    def visit(self) -> str | None:
        """The link that confirms the customer wants a visit and opens the booking page."""
        return self._link("visit", VISIT, None)

    def _link(self, route: str, question: str, score: int | None) -> str | None:
        if not self.secret:
            return None
        claim = LinkClaim(self.case_id, self.customer_id, question, score, self.expires)
        return f"{self.base_url}/{route}/{make_token(self.secret, claim)}"
