"""The metric suite against hand-computed cases, and the aggregates against known statistics."""

from __future__ import annotations

import math

import pytest

from bot.errors import ScenarioError, TurnError
from bot.negotiation.metrics import (
    METRIC_KEYS,
    Summary,
    aggregate,
    compute_metrics,
    summarize,
    t_cdf,
    t_quantile,
)
from bot.negotiation.turns import Turn


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# A negotiation over an item listed at 100; buyer target 60, seller target 100.
# Priced turns in order: 60, 90, 70, 72 -> sum of |steps| = 30 + 20 + 2 = 52.
DEAL_TURNS = [
    {"role": "buyer", "act": "init-price", "price": 60.0, "utterance": "Would you take 60?"},
    {"role": "seller", "act": "counter-price", "price": 90.0, "utterance": "How about 90?"},
    {"role": "buyer", "act": "inquire", "price": None, "utterance": "Does it still work?"},
    {"role": "seller", "act": "inform", "price": -1.0, "utterance": "Like new."},
    {"role": "buyer", "act": "offer", "price": 70.0, "utterance": "70 then."},
    {"role": "seller", "act": "counter-price", "price": 72.0, "utterance": "Meet me at 72."},
    {"role": "buyer", "act": "accept", "price": None, "utterance": ""},
]


def deal_metrics(**reservations):
    return compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS, 72.0, **reservations)


def test_keys_are_exactly_the_metric_keys():
    assert tuple(deal_metrics()) == METRIC_KEYS


def test_paper_metrics_of_a_deal():
    m = deal_metrics()
    assert m["agreed"] is True
    assert m["dialogue_length"] == 7
    # fairness = 1 - 2*|72 - 80| / 40 = 0.6 ; bias = 2*(100 - 72)/40 - 1 = 0.4
    assert m["fairness"] == approx(0.6)
    assert m["bias"] == approx(0.4)
    assert m["aggressiveness"] == approx(0.28)  # |72 - 100| / 100
    assert m["bias_per_turn"] == approx(0.4 / 7)
    assert m["relative_efficiency"] == approx(0.6 / 7)
    assert m["concession_rate"] == approx(52 / 7)
    assert m["probing_ratio"] == approx(1 / 7)


def test_bias_is_signed_and_fairness_unclamped():
    # Deal at the seller's target: bias -1 (seller got its target); fairness 0.
    m = compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS, 100.0)
    assert m["bias"] == approx(-1.0) and m["fairness"] == approx(0.0)
    # Deal below the buyer's target: bias above +1 and negative fairness, not clamped.
    m = compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS, 50.0)
    assert m["bias"] == approx(1.5)  # 2*50/40 - 1
    assert m["fairness"] == approx(-0.5)  # 1 - 2*30/40
    assert m["aggressiveness"] == approx(0.5)


def test_no_deal_leaves_deal_metrics_undefined():
    turns = DEAL_TURNS[:-1] + [{"role": "buyer", "act": "reject", "price": None}]
    m = compute_metrics(100.0, 60.0, 100.0, turns, None)
    assert m["agreed"] is False
    for key in ("fairness", "bias", "aggressiveness", "bias_per_turn", "relative_efficiency"):
        assert m[key] is None, key
    # Dialogue-level metrics stay defined.
    assert m["dialogue_length"] == 7
    assert m["concession_rate"] == approx(52 / 7)
    assert m["probing_ratio"] == approx(1 / 7)


def test_equal_targets_make_fairness_and_bias_undefined():
    m = compute_metrics(100.0, 80.0, 80.0, DEAL_TURNS, 72.0)
    assert m["fairness"] is None and m["bias"] is None
    assert m["bias_per_turn"] is None and m["relative_efficiency"] is None
    assert m["aggressiveness"] == approx(0.28)


def test_empty_dialogue():
    m = compute_metrics(100.0, 60.0, 100.0, [], None)
    assert m["dialogue_length"] == 0
    for key in (
        "probing_ratio",
        "concession_rate",
        "repeated_utterances",
        "tokens_per_turn",
        "seconds_per_turn",
    ):
        assert m[key] is None, key


def test_concession_needs_two_priced_turns_and_spans_both_roles():
    one = [
        {"role": "buyer", "act": "offer", "price": 50.0},
        {"role": "seller", "act": "inform", "price": None},
    ]
    assert compute_metrics(100.0, 60.0, 100.0, one, None)["concession_rate"] is None
    # Consecutive priced turns in dialogue order regardless of speaker: |80-50| + |55-80| + |55-55|.
    mixed = [
        {"role": "buyer", "act": "offer", "price": 50.0},
        {"role": "buyer", "act": "inquire", "price": None},
        {"role": "seller", "act": "offer", "price": 80.0},
        {"role": "buyer", "act": "offer", "price": 55.0},
        {"role": "seller", "act": "accept", "price": 55.0},
    ]
    assert compute_metrics(100.0, 60.0, 100.0, mixed, 55.0)["concession_rate"] == approx(55 / 5)


def test_probing_counts_inquire_and_the_datasets_inquiry_and_tolerates_garbage_acts():
    turns = [
        {"role": "buyer", "act": "Inquiry", "price": -1.0},
        {"role": "seller", "act": "inquire", "price": -1.0},
        {"role": "buyer", "act": "<offer|counter|accept|reject>", "price": -1.0},
        {"role": "seller", "act": "i think $8. integrate with my target price.", "price": 8.0},
        {"role": "buyer", "act": "", "price": None},
        {"role": "seller", "act": None, "price": None},
    ]
    m = compute_metrics(10.0, 7.0, 10.0, turns, None)
    assert m["probing_ratio"] == approx(2 / 6)
    assert m["concession_rate"] is None  # a single priced turn


def test_object_and_mapping_turns_give_the_same_metrics():
    objects = [
        Turn(
            role=t["role"],
            act=t["act"],
            price=t["price"] if (t["price"] or 0) > 0 else None,
            utterance=t["utterance"],
        )
        for t in DEAL_TURNS
    ]
    got = compute_metrics(
        100.0, 60.0, 100.0, objects, 72.0, seller_reservation=70.0, buyer_reservation=100.0
    )
    want = deal_metrics(seller_reservation=70.0, buyer_reservation=100.0)
    # Turn objects always carry seconds (0.0 by default); mappings here carry none.
    assert got.pop("seconds_per_turn") == 0.0 and want.pop("seconds_per_turn") is None
    for key in ("repaired_turns", "fallback_turns"):  # likewise the repaired/fallback flags
        assert got.pop(key) == 0.0 and want.pop(key) is None
    assert got == want


def test_reservation_metrics_inside_the_zone():
    m = deal_metrics(seller_reservation=70.0, buyer_reservation=100.0)
    assert m["in_zone"] is True
    assert m["reservation_violations"] == 0
    assert m["buyer_surplus_share"] == approx(28 / 30)  # (100 - 72) / (100 - 70)
    assert m["seller_surplus_share"] == approx(2 / 30)  # (72 - 70) / 30


def test_seller_violations_and_unclamped_shares():
    # Seller bottom line 75: the seller's proposal of 72 crosses it (1) and the deal at 72 is
    # below it (1); the buyer's accept of 72 is fine for the buyer.
    m = deal_metrics(seller_reservation=75.0, buyer_reservation=100.0)
    assert m["in_zone"] is False
    assert m["reservation_violations"] == 2
    assert m["buyer_surplus_share"] == approx(28 / 25)
    assert m["seller_surplus_share"] == approx(-3 / 25)


def test_buyer_violations_use_the_standing_offer_an_accept_takes():
    # Buyer ceiling 65: its offer of 70 (1), its accept of the seller's standing 72 (1: the
    # accept names no price) and the deal at 72 (1). The seller's 60..90 are all above 50.
    m = deal_metrics(seller_reservation=50.0, buyer_reservation=65.0)
    assert m["reservation_violations"] == 3
    assert m["in_zone"] is False
    # An accept that echoes a price is judged on that price.
    turns = DEAL_TURNS[:-1] + [{"role": "buyer", "act": "accept", "price": 72.0}]
    m = compute_metrics(
        100.0, 60.0, 100.0, turns, 72.0, seller_reservation=50.0, buyer_reservation=65.0
    )
    assert m["reservation_violations"] == 3


def test_violations_without_a_deal_and_prices_on_terminal_acts():
    turns = [
        {"role": "seller", "act": "offer", "price": 60.0},  # below bottom line 70: 1
        {"role": "buyer", "act": "quit", "price": 200.0},  # a price on quit proposes nothing
    ]
    m = compute_metrics(
        100.0, 60.0, 100.0, turns, None, seller_reservation=70.0, buyer_reservation=100.0
    )
    assert m["reservation_violations"] == 1
    assert m["in_zone"] is None
    assert m["buyer_surplus_share"] is None and m["seller_surplus_share"] is None


def test_reservation_metrics_are_undefined_without_reservations_or_zone():
    m = deal_metrics()
    for key in ("in_zone", "reservation_violations", "buyer_surplus_share", "seller_surplus_share"):
        assert m[key] is None, key
    m = deal_metrics(seller_reservation=70.0)  # only one side known
    assert m["reservation_violations"] is None and m["in_zone"] is None
    m = deal_metrics(seller_reservation=80.0, buyer_reservation=80.0)  # empty zone
    assert m["buyer_surplus_share"] is None and m["seller_surplus_share"] is None
    assert m["in_zone"] is False


def test_repeated_utterances_are_per_role_and_normalised():
    turns = [
        {"role": "buyer", "act": "offer", "price": 8.0, "utterance": "I think $8."},
        {"role": "seller", "act": "offer", "price": 9.0, "utterance": "No."},
        {"role": "buyer", "act": "offer", "price": 8.0, "utterance": "  i think   $8. "},  # repeat
        {"role": "seller", "act": "offer", "price": 8.5, "utterance": "I think $8."},  # other role
        {"role": "buyer", "act": "offer", "price": 8.0, "utterance": "I THINK $8."},  # repeat
        {"role": "seller", "act": "accept", "price": None, "utterance": ""},  # not counted
    ]
    m = compute_metrics(10.0, 7.0, 10.0, turns, 8.0)
    assert m["repeated_utterances"] == approx(2 / 5)
    silent = [{"role": "buyer", "act": "offer", "price": 8.0}]
    assert compute_metrics(10.0, 7.0, 10.0, silent, None)["repeated_utterances"] is None


def test_tokens_and_seconds_per_turn():
    turns = [
        Turn(
            role="buyer",
            act="offer",
            price=8.0,
            prompt_tokens=100,
            completion_tokens=20,
            seconds=1.5,
        ),
        Turn(
            role="seller",
            act="offer",
            price=9.0,
            prompt_tokens=200,
            completion_tokens=30,
            seconds=2.5,
        ),
        Turn(role="buyer", act="accept", price=None, seconds=4.0),  # a person: no tokens
    ]
    m = compute_metrics(10.0, 7.0, 10.0, turns, 9.0)
    assert m["tokens_per_turn"] == approx((120 + 230) / 2)
    assert m["seconds_per_turn"] == approx(8.0 / 3)
    assert deal_metrics()["tokens_per_turn"] is None


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"listing_price": 0.0}, ScenarioError),
        ({"buyer_target": -3.0}, ScenarioError),
        ({"seller_target": "100"}, ScenarioError),
        ({"deal_price": -5.0}, TurnError),
        ({"turns": [{"role": "buyer", "act": "offer", "price": "ten"}]}, TurnError),
        ({"turns": [{"role": "judge", "act": "offer", "price": 10.0}]}, TurnError),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, error):
    args = {
        "listing_price": 100.0,
        "buyer_target": 60.0,
        "seller_target": 100.0,
        "turns": DEAL_TURNS,
        "deal_price": 72.0,
        **kwargs,
    }
    with pytest.raises(error):
        compute_metrics(**args)


# --------------------------------------------------------------------------- aggregates

# Two-sided 95% critical values t_{0.975, df} (standard tables; scipy.stats.t.ppf).
T_975 = {
    1: 12.706204736174707,
    2: 4.302652729749464,
    3: 3.182446305284263,
    5: 2.570581835636314,
    10: 2.228138851986274,
    29: 2.045229642132703,
    30: 2.042272456301238,
    100: 1.983971518523552,
}


@pytest.mark.parametrize("df, expected", sorted(T_975.items()))
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, rel=1e-9)


def exact_t_cdf(t: float, n: int) -> float:
    """Closed form of the t CDF for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4):
    an independent reference for the incomplete-beta implementation."""
    theta = math.atan(t / math.sqrt(n))
    cos2 = math.cos(theta) ** 2
    if n % 2:
        series, term = 0.0, math.cos(theta)
        if n > 1:
            series = term
            for k in range(3, n - 1, 2):
                term *= cos2 * (k - 1) / k
                series += term
        inside = 2 / math.pi * (theta + math.sin(theta) * series)
    else:
        series = term = 1.0
        for k in range(2, n - 1, 2):
            term *= cos2 * (k - 1) / k
            series += term
        inside = math.sin(theta) * series
    return 0.5 + inside / 2  # inside = P(|T| <= t)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 12, 30, 101])
def test_t_quantile_inverts_the_closed_form_cdf(df):
    for p in (0.6, 0.9, 0.975, 0.995, 0.9995):
        q = t_quantile(p, df)
        assert exact_t_cdf(q, df) == pytest.approx(p, rel=1e-12)
        assert t_cdf(q, df) == pytest.approx(p, rel=1e-12)
        assert t_quantile(1 - p, df) == pytest.approx(-q, rel=1e-12)


def test_t_quantile_other_levels_and_many_degrees_of_freedom():
    assert t_quantile(0.995, 4) == pytest.approx(4.604094871415897, rel=1e-9)
    assert t_quantile(0.5, 3) == 0.0
    # Both methods agree where the bisection hands over to the asymptotic expansion ...
    below, above = t_quantile(0.975, 99_999.0), t_quantile(0.975, 100_000.0)
    # (the step between them is dt/d(df) ~ -(z^3 + z) / (4 df^2), z the normal quantile)
    z = 1.959963984540054
    assert below - above == pytest.approx((z**3 + z) / 4 / 1e10, rel=2e-2)
    # ... and tend to the normal quantile.
    assert t_quantile(0.975, 1e12) == pytest.approx(1.959963984540054, rel=1e-11)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_quantile(0.9, 0)


def test_aggregate_known_sample():
    s = aggregate([1, 2, None, 3, 4])
    assert s.n == 4 and s.mean == approx(2.5) and s.median == approx(2.5)
    sd = math.sqrt(5 / 3)  # sample variance of 1..4 is 5/3
    assert s.std == approx(sd)
    half = T_975[3] * sd / 2
    assert s.ci_low == pytest.approx(2.5 - half, rel=1e-9)
    assert s.ci_high == pytest.approx(2.5 + half, rel=1e-9)


def test_aggregate_edge_cases():
    assert aggregate([]) == Summary(None, None, 0, None, None, None)
    assert aggregate([None, None]) == Summary(None, None, 0, None, None, None)
    assert aggregate([0.25]) == Summary(0.25, 0.25, 1, None, None, None)
    rate = aggregate([True, False, True, True])
    assert rate.mean == approx(0.75) and rate.n == 4
    same = aggregate([2.0, 2.0, 2.0])
    assert same.std == 0.0 and same.ci_low == same.ci_high == 2.0


def test_summarize_skips_undefined_per_key():
    records = [
        compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS, 72.0),
        compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS, 100.0),
        compute_metrics(100.0, 60.0, 100.0, DEAL_TURNS[:-1], None),
    ]
    summary = summarize(records)
    assert set(summary) == set(METRIC_KEYS)
    assert summary["agreed"].n == 3 and summary["agreed"].mean == approx(2 / 3)
    assert summary["fairness"].n == 2 and summary["fairness"].mean == approx(0.3)
    assert summary["in_zone"].n == 0 and summary["in_zone"].mean is None
    only_bias = summarize(records, keys=("bias",))
    assert list(only_bias) == ["bias"]
    assert only_bias["bias"].n == 2 and only_bias["bias"].mean == approx(-0.3)


def test_text_price_mismatches_and_intervention_shares():
    turns = [
        {"role": "buyer", "act": "init-price", "price": 60.0, "utterance": "Would you take $60?"},
        {"role": "seller", "act": "counter-price", "price": 90.0, "utterance": "$60 is low, $90?",
         "repaired": True, "fallback": False},
        {"role": "buyer", "act": "counter-price", "price": 70.0, "utterance": "I can do $65.",
         "repaired": False, "fallback": True},
        {"role": "seller", "act": "inform", "price": None, "utterance": "It is barely used."},
    ]
    for t in turns:
        t.setdefault("repaired", False)
        t.setdefault("fallback", False)
    m = compute_metrics(100.0, 60.0, 100.0, turns, None)
    assert m["text_price_mismatches"] == approx(1 / 4)  # only "$65" against a price of $70
    assert m["repaired_turns"] == approx(1 / 4) and m["fallback_turns"] == approx(1 / 4)
    no_text = [{k: v for k, v in t.items() if k != "utterance"} for t in turns]
    assert compute_metrics(100.0, 60.0, 100.0, no_text, None)["text_price_mismatches"] is None
