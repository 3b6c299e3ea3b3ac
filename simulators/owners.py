"""How a simulated owner behaves: when they read a message, what they answer, whether they stay.

Pure behaviour on plain data, decided by the fleet seed: every draw comes from a generator
seeded with (seed, device number, what is drawn, which case), so the same seed gives the same
owner whatever order the simulation asks in.

The survey model follows what the customer-service field reports: being told early and getting
the product fixed before it fails pleases; finding out oneself and phoning in does not; being
messaged several times about one problem annoys; a visit that finds nothing is a mild nuisance.
CSAT is 1–5, CES 1–7 (higher: easier, as in "the company made it easy to handle my issue"),
NPS 0–10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.customers import Customer
from simulators.weather import DAY, HOUR

_OWNER_STREAM = 3
_TRAIT, _READ, _BOOK, _SURVEY, _CHURN = range(5)
_NIGHT_STARTS_H, _MORNING_H = 22.0, 7.0
_CHURN_BY_CSAT = {1: 0.40, 2: 0.25, 3: 0.10, 4: 0.03, 5: 0.01}


@dataclass(frozen=True)
class Experience:
    """What one owner lived through over one problem.

    ``contacted_early``: told by the monitor before noticing the problem themselves;
    ``fixed_before_failure``: repaired before the product failed; ``messages``: customer
    messages received about this problem; ``false_alarm``: a visit found nothing wrong;
    ``days_waiting``: from noticing (or being told) until it was fixed.
    """

    contacted_early: bool
    fixed_before_failure: bool
    messages: int
    false_alarm: bool
    days_waiting: float


@dataclass(frozen=True)
class SurveyAnswers:
    """One owner's answers after a case ended; ``nps`` only when asked this quarter."""

    csat: int
    ces: int
    nps: int | None


class Owner:
    """The simulated owner of device number ``number`` in a fleet built with ``seed``."""

    def __init__(self, customer: Customer, seed: int, number: int) -> None:
        self.customer = customer
        self.seed = seed
        self.number = number
        traits = self._rng(_TRAIT, 0)
        # Some owners read mail within minutes, others once in the evening.
        self.median_read_delay_s = float(np.exp(traits.uniform(np.log(600), np.log(4 * HOUR))))
        self.mood = float(traits.normal(0.0, 0.3))
        self.answers_surveys = float(traits.uniform(0.6, 0.95))

    def local_hour(self, at: float) -> float:
        """Hour of the owner's local day at ``at`` (epoch seconds)."""
        return ((at + self.customer.site.utc_offset_h * HOUR) % DAY) / HOUR

    def read_at(self, sent_at: float, case_key: int) -> float:
        """When the owner reads a message sent at ``sent_at``: later when it arrives at night."""
        rng = self._rng(_READ, case_key)
        awake = self._next_waking_time(sent_at)
        return awake + float(rng.lognormal(np.log(self.median_read_delay_s), 0.8))

    def books_visit(self, read_at: float, case_key: int) -> float | None:
        """When the owner books a visit after reading, or None if they do not bother."""
        rng = self._rng(_BOOK, case_key)
        if rng.random() < 0.1:
            return None
        return read_at + float(rng.uniform(2 * 60, 30 * 60))

    def finds_helpful(self, experience_so_far: Experience, case_key: int) -> int | None:
        """The one-click "was this helpful?" (1 or 0), or None if not clicked."""
        rng = self._rng(_SURVEY, case_key * 2 + 1)
        if rng.random() > self.answers_surveys:
            return None
        chance = 0.92 - 0.2 * max(experience_so_far.messages - 1, 0)
        return int(rng.random() < chance)

    def answers(self, experience: Experience, case_key: int, *, ask_nps: bool) -> SurveyAnswers:
        """The owner's CSAT, CES (and NPS when asked) after a case ended."""
        rng = self._rng(_SURVEY, case_key * 2)
        mood = satisfaction(experience) + self.mood
        csat = int(np.clip(round(mood + rng.normal(0.0, 0.35)), 1, 5))
        ces = int(np.clip(round(effort_ease(experience) + rng.normal(0.0, 0.5)), 1, 7))
        nps = int(np.clip(round(2.3 * mood - 1.5 + rng.normal(0.0, 0.8)), 0, 10))
        return SurveyAnswers(csat, ces, nps if ask_nps else None)

    def answers_survey(self, case_key: int) -> bool:
        """Whether the owner answers the survey about this case at all."""
        return bool(self._rng(_SURVEY, case_key * 2 + 2).random() < self.answers_surveys)

    def leaves(self, experience: Experience, csat: int | None, case_key: int) -> bool:
        """Whether the owner leaves (churns) after this case."""
        felt = csat if csat is not None else int(np.clip(round(satisfaction(experience)), 1, 5))
        return bool(self._rng(_CHURN, case_key).random() < _CHURN_BY_CSAT[felt])

    def _next_waking_time(self, at: float) -> float:
        hour = self.local_hour(at)
        if hour >= _NIGHT_STARTS_H:
            return at + (24.0 - hour + _MORNING_H) * HOUR
        if hour < _MORNING_H:
            return at + (_MORNING_H - hour) * HOUR
        return at

    def _rng(self, what: int, case_key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.number, _OWNER_STREAM, what, case_key])


def satisfaction(experience: Experience) -> float:
    """The owner's expected CSAT (1–5, before personal mood and noise) for an experience."""
    if experience.false_alarm:
        base = 4.0
    elif experience.contacted_early and experience.fixed_before_failure:
        base = 4.7
    elif experience.contacted_early:
        base = 3.9
    else:
        # Found out themselves and phoned: every day of waiting after that hurts more.
        base = 2.8 - 0.25 * min(max(experience.days_waiting - 1.0, 0.0), 4.0)
    return base - 0.6 * max(experience.messages - 1, 0)


def effort_ease(experience: Experience) -> float:
    """The owner's expected CES (1–7, 7 = effortless) for an experience."""
    base = 6.2 if experience.contacted_early else 3.6
    if experience.false_alarm:
        base -= 0.8
    return base - 0.5 * max(experience.messages - 1, 0)
