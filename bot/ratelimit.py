"""Per-person rate limits across the whole bot (``[bot] actions_per_minute``).

Cooldowns (bot/checks.py) space out one command per server; this bounds everything a person
does, everywhere at once: game messages, button presses and commands, over a sliding minute,
keyed by the person alone (so many games or many servers do not multiply it). Pure: no
Discord, the clock injectable.

    limits = RateLimits(30)
    wait = limits.hit(user_id)      # None: go ahead; else seconds until the next action counts
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0


class RateLimits:
    """At most ``per_minute`` actions per person in any 60 s (0: no limit)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 max_people: int = 100_000) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._told: dict[int, float] = {}  # when each limited person was last told
        self._max_people = max_people
        self.refused = 0

    def hit(self, person: int) -> float | None:
        """Count one action of ``person``: None when allowed, else the seconds to wait (the
        refused action is not counted)."""
        if self.per_minute <= 0:
            return None
        now = self._clock()
        hits = self._hits.get(person)
        if hits is None:
            if len(self._hits) >= self._max_people:
                self._forget(now)
            hits = self._hits[person] = deque()
        while hits and now - hits[0] >= WINDOW_S:
            hits.popleft()
        if len(hits) >= self.per_minute:
            self.refused += 1
            return max(0.1, WINDOW_S - (now - hits[0]))
        hits.append(now)
        return None

    def first_refusal(self, person: int) -> bool:
        """True once per window while ``person`` is limited: tell them then, not at every
        message (an answer to each would double the flood)."""
        now = self._clock()
        told = self._told.get(person)
        if told is not None and now - told < WINDOW_S:
            return False
        self._told[person] = now
        return True

    def _forget(self, now: float) -> None:
        """Drop people idle for a window (memory stays bounded)."""
        for person in [p for p, h in self._hits.items() if not h or now - h[-1] >= WINDOW_S]:
            del self._hits[person]
            self._told.pop(person, None)


def slow_down(wait: float, per_minute: int) -> str:
    return (f"Slow down a little: at most {per_minute} messages, clicks and commands a minute. "
            f"That one wasn't counted; try again in {wait:.0f} s.")
