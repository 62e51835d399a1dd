"""Summaries of stored negotiations: metric keys, mean/median/n/95% interval per metric,
grouping by pairing, labels, and sort keys shared by the report's tables."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from bot.negotiation.metrics import METRIC_KEYS, aggregate

if TYPE_CHECKING:
    from bot.store import NegotiationRow

SEATS = ("buyer", "seller")


def metric_keys(negotiations: Iterable[NegotiationRow]) -> list[str]:
    """METRIC_KEYS first, then any other metric a stored negotiation carries."""
    keys = list(METRIC_KEYS)
    for n in negotiations:
        keys += [k for k in n.metrics if k not in keys]
    return keys


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion: stays inside [0, 1] and is not degenerate at
    0% or 100%, unlike a t-interval of 0/1 values (30 deals of 30 -> [0.886, 1])."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def summarise(values: Iterable[Any]) -> dict[str, Any]:
    """``aggregate`` as a dict; yes/no metrics (agreed, in_zone) get a Wilson interval."""
    values = [v for v in values if v is not None]
    summary = aggregate(values)
    if values and all(isinstance(v, bool) for v in values):
        low, high = wilson_interval(sum(values), len(values))
        summary = replace(summary, ci_low=low, ci_high=high)
    return asdict(summary)


def own_share(n: NegotiationRow, seat: str) -> float | None:
    return n.metrics.get(f"{seat}_surplus_share")


def scale_value(label: Any) -> float:
    """A model scale label as a number for sorting ("3B" -> 3e9; none or unknown last)."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMB])$", str(label or ""))
    if not match:
        return math.inf
    return float(match.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[match.group(2)]


def _tournament_tag(tournament: str, buyer: str, seller: str) -> str:
    """A short tag telling apart tournaments of the same pairing: an imported file name like
    ``agreemate/A+B_updated`` becomes ``agreemate updated``."""
    tag = tournament.replace(f"{buyer}+{seller}", "")
    tag = re.sub(r"[/_]+", " ", tag).strip()
    return tag or tournament


def pairing_groups(negotiations: Sequence[NegotiationRow]
                   ) -> dict[tuple[str, str, str], list[NegotiationRow]]:
    groups: dict[tuple[str, str, str], list[NegotiationRow]] = defaultdict(list)
    for n in negotiations:
        groups[(n.tournament, n.buyer, n.seller)].append(n)
    return dict(groups)


def pairing_labels(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """'buyer vs seller', with a tournament tag only where the pairing ran in several."""
    keys = list(keys)
    count = Counter((b, s) for _, b, s in keys)
    return {(t, b, s): f"{b} vs {s}"
            + (f" ({_tournament_tag(t, b, s)})" if count[(b, s)] > 1 else "")
            for t, b, s in keys}
