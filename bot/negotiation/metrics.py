"""The metric suite: per-negotiation metrics and their aggregates.

Definitions follow AgreeMate (arXiv 2412.18690) with its typo fixed and no hidden clamping
(the definitions below are this project's); p = deal price, s = seller target, b = buyer
target, L = turns:

- agreed: a deal was reached (``deal_price`` is not None).
- dialogue_length: L, every turn, the closing accept included.
- fairness = 1 - 2*|p - (s+b)/2| / (s - b)     (deals only; undefined when s == b)
- bias = 2*(s - p)/(s - b) - 1                 (signed: +1 buyer got its target, -1 seller did)
- aggressiveness = |p - listing| / listing     (deals only)
- bias_per_turn = bias / L;  relative_efficiency = fairness / L
- concession_rate = sum over consecutive priced turns (both roles, in order) of
  |p_i - p_(i-1)|, divided by L; undefined with fewer than two priced turns (no pair of
  prices, so no concession to measure).
- probing_ratio = (#inquire turns) / L

Beyond the paper: ``in_zone`` (deal inside [seller reservation, buyer reservation]),
``reservation_violations`` (must be 0 for guarded agents), each side's share of the zone of
agreement, tokens and seconds per turn, and ``repeated_utterances`` (how often a side
repeats itself verbatim, a failure mode of small models).

Undefined values are None, never 0: averaging a 0 that stands for "undefined" would bias
every aggregate. Turns may be ``Turn`` objects or plain mappings (imported data), and their
acts arbitrary strings: imported runs contain garbage acts, which count as no known act.

``aggregate`` gives mean, median, count, sample standard deviation and a 95% Student-t
interval; the t quantile is computed here (regularized incomplete beta, inverted by
bisection; an asymptotic expansion for very many degrees of freedom) so that the pure core
needs no scipy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from bot.errors import ScenarioError, TurnError
from bot.negotiation.guard import utterance_problem
from bot.negotiation.turns import TERMINAL_ACTS, Act, Role, Turn, check_price, standing_price

METRIC_KEYS: tuple[str, ...] = (
    "agreed",
    "dialogue_length",
    "fairness",
    "bias",
    "aggressiveness",
    "bias_per_turn",
    "concession_rate",
    "relative_efficiency",
    "probing_ratio",
    "in_zone",
    "reservation_violations",
    "buyer_surplus_share",
    "seller_surplus_share",
    "tokens_per_turn",
    "seconds_per_turn",
    "repeated_utterances",
    "text_price_mismatches",
    "repaired_turns",
    "fallback_turns",
)

# Prices within this distance of a reservation count as on it (float noise, not a violation).
_EPS = 1e-9


# --------------------------------------------------------------------------- turn access


def _get(turn: Any, name: str) -> Any:
    """A field of a turn that is either a mapping or an object; None when absent."""
    if isinstance(turn, Mapping):
        return turn.get(name)
    return getattr(turn, name, None)


def _price(value: Any) -> float | None:
    """A turn's price, or None when it names none.

    Imported data marks "no price" with -1.0, so any non-positive or NaN value is no price.
    Anything that is not a number at all is a malformed turn.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TurnError(f"a turn's price must be a number or null, got {value!r}")
    value = float(value)
    if math.isnan(value) or value <= 0:
        return None
    if math.isinf(value):
        raise TurnError(f"a turn's price must be finite, got {value!r}")
    return value


def _act(value: Any) -> Act | None:
    """The turn's act, or None for a missing or unknown label (garbage acts are tolerated)."""
    if value is None:
        return None
    try:
        return Act.parse(value)
    except TurnError:
        return None


def _role(value: Any) -> Role | None:
    return None if value is None else Role.parse(value)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ScenarioError(f"{name} must be a positive price, got {value!r}")
    return value


def _normalise_utterance(text: Any) -> str:
    """Case- and whitespace-insensitive form used to spot verbatim repeats."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.split()).casefold()


# --------------------------------------------------------------------------- one negotiation


def compute_metrics(
    listing_price: float,
    buyer_target: float,
    seller_target: float,
    turns: Sequence[Any],
    deal_price: float | None,
    *,
    seller_reservation: float | None = None,
    buyer_reservation: float | None = None,
) -> dict[str, Any]:
    """Every metric of one negotiation, keyed as in ``METRIC_KEYS``.

    ``turns`` are objects or mappings with ``role``, ``act`` and ``price`` (and optionally
    ``utterance``, ``prompt_tokens``, ``completion_tokens``, ``seconds``); ``deal_price`` is
    None when there was no deal. Reservations are optional: without them the reservation
    metrics are None.
    """
    listing = _positive(listing_price, "listing_price")
    b = _positive(buyer_target, "buyer_target")
    s = _positive(seller_target, "seller_target")
    p = check_price(deal_price, what="deal_price")
    seller_res = (
        None if seller_reservation is None else _positive(seller_reservation, "seller_reservation")
    )
    buyer_res = (
        None if buyer_reservation is None else _positive(buyer_reservation, "buyer_reservation")
    )

    roles = [_role(_get(t, "role")) for t in turns]
    acts = [_act(_get(t, "act")) for t in turns]
    prices = [_price(_get(t, "price")) for t in turns]
    n = len(turns)

    fairness = bias = aggressiveness = None
    if p is not None:
        aggressiveness = abs(p - listing) / listing
        if s != b:
            fairness = 1 - 2 * abs(p - (s + b) / 2) / (s - b)
            bias = 2 * (s - p) / (s - b) - 1

    priced = [x for x in prices if x is not None]
    concession_rate = None
    if n and len(priced) >= 2:
        concession_rate = sum(abs(cur - prev) for prev, cur in pairwise(priced)) / n

    metrics: dict[str, Any] = {
        "agreed": p is not None,
        "dialogue_length": n,
        "fairness": fairness,
        "bias": bias,
        "aggressiveness": aggressiveness,
        "bias_per_turn": bias / n if bias is not None and n else None,
        "concession_rate": concession_rate,
        "relative_efficiency": fairness / n if fairness is not None and n else None,
        "probing_ratio": sum(a is Act.INQUIRE for a in acts) / n if n else None,
    }
    metrics.update(_reservation_metrics(roles, acts, prices, p, seller_res, buyer_res))
    metrics.update(_cost_metrics(turns))
    metrics["repeated_utterances"] = _repeated_utterances(turns, roles)
    metrics["text_price_mismatches"] = _text_price_mismatches(turns, roles, prices, acts)
    for key, flag in (("repaired_turns", "repaired"), ("fallback_turns", "fallback")):
        flags = [_get(t, flag) for t in turns]
        metrics[key] = (sum(bool(f) for f in flags) / n) if n and all(f is not None for f in flags) else None
    return metrics


def _reservation_metrics(
    roles: list[Role | None],
    acts: list[Act | None],
    prices: list[float | None],
    deal: float | None,
    seller_res: float | None,
    buyer_res: float | None,
) -> dict[str, Any]:
    """in_zone, reservation_violations and surplus shares (None where reservations unknown)."""
    out: dict[str, Any] = {
        "in_zone": None,
        "reservation_violations": None,
        "buyer_surplus_share": None,
        "seller_surplus_share": None,
    }
    if seller_res is None or buyer_res is None:
        return out

    def crosses(role: Role | None, price: float) -> bool:
        if role is Role.SELLER:
            return price < seller_res - _EPS
        if role is Role.BUYER:
            return price > buyer_res + _EPS
        return False

    violations = 0
    standing: dict[Role, float] = {}  # each role's last proposed price so far
    for role, act, price in zip(roles, acts, prices, strict=False):
        if act is Act.ACCEPT:
            # An accept takes the counterpart's standing offer; a price on it only echoes it.
            taken = price
            if taken is None and role is not None:
                taken = standing.get(role.other)
            if taken is not None and crosses(role, taken):
                violations += 1
        elif act not in TERMINAL_ACTS and price is not None:
            # Any other priced turn states a price, whatever its (possibly garbage) label.
            if crosses(role, price):
                violations += 1
            if role is not None:
                standing[role] = price
    if deal is not None:
        violations += (deal < seller_res - _EPS) + (deal > buyer_res + _EPS)
        out["in_zone"] = seller_res - _EPS <= deal <= buyer_res + _EPS
        zone = buyer_res - seller_res
        if zone > 0:
            # Not clamped: a deal outside the zone shows as a share below 0 or above 1.
            out["buyer_surplus_share"] = (buyer_res - deal) / zone
            out["seller_surplus_share"] = (deal - seller_res) / zone
    out["reservation_violations"] = violations
    return out


def _cost_metrics(turns: Sequence[Any]) -> dict[str, float | None]:
    """Mean tokens (prompt + completion) and seconds over the turns that record them."""
    tokens: list[float] = []
    seconds: list[float] = []
    for turn in turns:
        counts = [_number(_get(turn, k)) for k in ("prompt_tokens", "completion_tokens")]
        if any(c is not None for c in counts):
            tokens.append(sum(c for c in counts if c is not None))
        sec = _number(_get(turn, "seconds"))
        if sec is not None:
            seconds.append(sec)
    return {
        "tokens_per_turn": statistics.fmean(tokens) if tokens else None,
        "seconds_per_turn": statistics.fmean(seconds) if seconds else None,
    }


def _repeated_utterances(turns: Sequence[Any], roles: list[Role | None]) -> float | None:
    """Fraction of turns with a non-empty utterance that repeat one the same role said before."""
    seen: dict[Role | None, set[str]] = {}
    spoken = repeats = 0
    for turn, role in zip(turns, roles, strict=False):
        text = _normalise_utterance(_get(turn, "utterance"))
        if not text:
            continue
        spoken += 1
        said = seen.setdefault(role, set())
        if text in said:
            repeats += 1
        said.add(text)
    return repeats / spoken if spoken else None


def _text_price_mismatches(turns: Sequence[Any], roles: list[Role | None], prices: list[float | None],
                           acts: list[Act | None]) -> float | None:
    """Fraction of turns with text whose utterance states a price that is neither the turn's
    own price nor (beside it) a standing offer: what a reader sees contradict the move."""
    history: list[Turn] = []
    spoken = mismatched = 0
    for turn, role, price, act in zip(turns, roles, prices, acts, strict=False):
        text = _get(turn, "utterance")
        if role is None or not isinstance(text, str):
            return None  # no utterances (or no roles): nothing to compare
        try:
            t = Turn(role, act or Act.UNKNOWN, price, text)
        except TurnError:
            t = Turn(role, Act.UNKNOWN, price, text)
        if text.strip():
            spoken += 1
            on_table = [p for p in (standing_price(history, role.other), standing_price(history, role))
                        if p is not None]
            mismatched += utterance_problem(t, on_table) is not None
        history.append(t)
    return mismatched / spoken if spoken else None


# --------------------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Summary:
    """Mean, median, count, sample std and 95% Student-t interval of the defined values.

    All None when no value is defined; ``std`` and the interval are None for a single value.
    """

    mean: float | None
    median: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    std: float | None


def aggregate(values: Iterable[Any], *, confidence: float = 0.95) -> Summary:
    """Summarise ``values``, skipping None (undefined); booleans count as 0/1 (rates)."""
    xs = [float(v) for v in values if v is not None]
    xs = [x for x in xs if not math.isnan(x)]
    n = len(xs)
    if n == 0:
        return Summary(None, None, 0, None, None, None)
    mean = statistics.fmean(xs)
    median = statistics.median(xs)
    if n == 1:
        return Summary(mean, median, 1, None, None, None)
    std = statistics.stdev(xs)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Summary(mean, median, n, mean - half, mean + half, std)


def summarize(
    records: Iterable[Mapping[str, Any]], keys: Sequence[str] = METRIC_KEYS
) -> dict[str, Summary]:
    """Aggregate each metric over many negotiations' ``compute_metrics`` results."""
    records = list(records)
    return {key: aggregate(r.get(key) for r in records) for key in keys}


# --------------------------------------------------------------------------- Student t


def _betacf(a: float, b: float, x: float, y: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method).

    ``y`` is 1 - x: the first denominator 1 - (a+b)x/(a+1) is computed as
    (1 - b + (a+b)y)/(a+1), which does not cancel when x is near 1 and a is large.
    """
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, (1.0 - b + qab * y) / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _lgamma_shift(z: float, s: float) -> float:
    """ln Gamma(z + s) - ln Gamma(z), without the cancellation of two huge lgamma values.

    For z >= 100 it takes the difference of Stirling's series term by term (remainder below
    1e-17 there); lgamma(z) itself would carry an absolute error of about z*log(z)*1e-16.
    """
    if z < 100:
        return math.lgamma(z + s) - math.lgamma(z)

    def corr(x: float) -> float:
        return 1 / (12 * x) - 1 / (360 * x**3) + 1 / (1260 * x**5)

    return (z - 0.5) * math.log1p(s / z) + s * math.log(z + s) - s + corr(z + s) - corr(z)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta function I_x(a, b); ``y`` is 1 - x, given separately so
    that x close to 1 (large degrees of freedom) loses no precision."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    big, small = max(a, b), min(a, b)
    log_front = (
        _lgamma_shift(big, small)
        - math.lgamma(small)
        + a * (math.log1p(-y) if x > 0.5 else math.log(x))
        + b * (math.log1p(-x) if y > 0.5 else math.log(y))
    )
    if x < (a + 1.0) / (a + b + 2.0):  # where each continued fraction converges fast
        return math.exp(log_front) * _betacf(a, b, x, y) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y, x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom.

    Accurate to about 1e-12 in the tail probability up to 1e5 degrees of freedom; beyond
    that the continued fraction slowly loses digits (``t_quantile`` switches method there).
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    t2 = t * t
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return 1.0 - tail if t >= 0 else tail


# From this many degrees of freedom on, the quantile comes from its asymptotic expansion:
# the continued fraction loses digits there (its terms cancel as x -> 1), while the expansion's
# remainder is below 1e-20.
_ASYMPTOTIC_DF = 1e5


def _t_quantile_asymptotic(p: float, df: float) -> float:
    """Cornish-Fisher expansion of the t quantile in 1/df (Abramowitz & Stegun 26.7.5)."""
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (0 < p < 1).

    Inverts ``t_cdf`` by bisection (relative error about 1e-13 or better), or uses the
    asymptotic expansion from ``_ASYMPTOTIC_DF`` degrees of freedom on.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile probability must be in (0, 1), got {p!r}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df >= _ASYMPTOTIC_DF:
        return _t_quantile_asymptotic(p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket the root; the t tail is heavy for small df
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection: t_cdf is monotone, so this cannot fail to converge
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * max(1.0, hi):
            break
    return (lo + hi) / 2.0
