"""A generated week of agent demand from 100 developers in 3 tribes and 9 squads.

Each tribe works in its own time zone (the tribes' working days are offset), squads differ
in how busy they are, and each developer starts runs as a Poisson process whose rate
follows a working-day profile (quiet nights, a morning and an afternoon peak, light
weekends). Each run asks for 1-4 agent steps at once, each lasting a log-normal time
(median 6 minutes). Seeded: the same seed gives the same week.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from orchestra.scheduling import Placement

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY

TRIBES = {
    # tribe: (region, hours its working day is offset from UTC)
    "payments": ("eu", 0),
    "platform": ("eu", 3),
    "growth": ("us", -7),
}
SQUAD_LOAD = (0.6, 1.0, 1.6)
"""How busy a tribe's three squads are, relative to each other."""


@dataclass(frozen=True)
class Ask:
    """One agent step asked for: who, when, and for how long."""

    placement: Placement
    at: float
    duration: float


def organisation(developers: int = 100) -> list[Placement]:
    """``developers`` placed round-robin into 9 squads of 3 tribes."""
    squads = [(tribe, f"{tribe}-{i + 1}") for tribe in TRIBES for i in range(3)]
    people = []
    for n in range(developers):
        tribe, squad = squads[n % len(squads)]
        people.append(Placement(f"dev{n:03d}", squad, tribe, TRIBES[tribe][0]))
    return people


def _profile(local_hour: float, weekday: int) -> float:
    """Relative rate of starting runs at a local hour of a weekday (0 Monday)."""
    if not 8 <= local_hour < 19:
        return 0.03
    peak = math.exp(-((local_hour - 10.5) ** 2) / 2) + math.exp(-((local_hour - 15) ** 2) / 3)
    return (0.25 + peak) * (0.15 if weekday >= 5 else 1.0)


def week_of_demand(
    seed: int, start: float = 0.0, runs_per_day: float = 12.0, developers: int = 100
) -> list[Ask]:
    """Agent steps asked for over one week from ``start``, sorted by time."""
    rng = random.Random(seed)
    asks: list[Ask] = []
    people = organisation(developers)
    for person in people:
        load = SQUAD_LOAD[int(person.squad.rsplit("-", 1)[1]) - 1] * rng.uniform(0.7, 1.3)
        offset = TRIBES[person.tribe][1] * HOUR
        # Thinning: draw at the highest rate, keep each draw in proportion to the profile.
        top = runs_per_day * load / (1.2 * 11 * HOUR) * 1.6
        t = start
        while True:
            t += rng.expovariate(top)
            if t >= start + WEEK:
                break
            local = t + offset
            day = int(local // DAY) % 7
            if rng.random() * 1.6 < _profile((local % DAY) / HOUR, day):
                for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
                    asks.append(Ask(person, t, rng.lognormvariate(math.log(360.0), 0.6)))
    asks.sort(key=lambda a: a.at)
    return asks
