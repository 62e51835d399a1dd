"""Recomputing AgreeMate's published metrics from its raw runs reproduces them.

All 90 result files (2,700 negotiations) of GeneralCoder365/agreemate ``results/`` are read
with ``load_agreemate_csv`` and every row is recomputed with ``compute_metrics`` from its
prices, actions, targets and outcome, with the deal price = ``accepted_price`` of an
``Accepted`` row. The published ``fairness``, ``aggressiveness``, ``probing_ratio``,
``dialogue_length`` and signed ``bias`` (and ``bias_cond_dialogue_length``, which is our
``bias_per_turn``) must match wherever the CSV defines them, within 1e-9 relative (1e-12
absolute for values at 0).

How their columns were computed (``results/baseline.ipynb``, ``Negotiation.collect_results``):
a negotiation is Accepted when a turn's action is "accept" or "agree"; ``accepted_price`` is
the last price named (reset to none by a "disagree"/"reject"); ``dialogue_length`` counts
every transcript line, i.e. every turn; deal metrics are NaN without a deal. Two kinds of
rows differ, each for a reason checked exactly below, never by loosening the tolerance:

1. ``probing_ratio`` on 4 rows (2 runs, each also in its ``_updated`` copy): their code
   counts ``actions.count("inquire")``, so a turn labelled with the dataset's spelling
   ``inquiry`` was not counted; our metrics (bot/negotiation/metrics.py) count it as
   inquire. Their value is exactly ours minus (#"inquiry" turns) / L.
2. ``fairness``, ``bias``, ``aggressiveness`` and ``bias_cond_dialogue_length`` on 5 rows of
   ``finetune-3B-buyer+finetune-3B-seller.csv``: Accepted, ``accepted_price`` empty and no
   price named in the whole dialogue, yet the metrics are filled in (fairness 0, bias -1,
   aggressiveness 0). They are exactly our metrics for a deal at the listing price (which is
   the seller target there): that run's code started its current price at the listing price,
   as baseline.ipynb does, but did not write it out. We report such a row as undefined.

Where the CSV leaves a metric empty, ours is None too (no row has a value only on our side).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

import pytest

from bot.agreemate import load_agreemate_csv
from bot.negotiation.metrics import compute_metrics
from tests.conftest import shared_file

# published column -> our metric key
COMPARED = {
    "fairness": "fairness",
    "aggressiveness": "aggressiveness",
    "probing_ratio": "probing_ratio",
    "dialogue_length": "dialogue_length",
    "bias": "bias",
    "bias_cond_dialogue_length": "bias_per_turn",
}
DEAL_COLUMNS = ("fairness", "aggressiveness", "bias", "bias_cond_dialogue_length")


def same(ours: float, theirs: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture(scope="module")
def files():
    folder = shared_file("agreemate_results")
    paths = sorted(folder.glob("*.csv"))
    assert len(paths) == 90, f"expected the 90 AgreeMate result files in {folder}"
    loaded = [load_agreemate_csv(p) for p in paths]
    assert all(f.bad_rows == [] for f in loaded)
    return loaded


def recompute(row, deal_price):
    return compute_metrics(
        row.listing_price, row.buyer_target, row.seller_target, row.turns, deal_price
    )


def test_published_metrics_are_reproduced(files):
    matched: Counter[str] = Counter()
    both_undefined: Counter[str] = Counter()
    explained: Counter[str] = Counter()
    rows = 0
    for f in files:
        for row in f.rows:
            rows += 1
            ours = recompute(row, row.deal_price)
            where = f"{f.path.name} line {row.line}"
            for column, key in COMPARED.items():
                if column not in row.published:  # probing_ratio: absent from 3 files
                    continue
                theirs, mine = row.published[column], ours[key]
                if theirs is None:
                    assert mine is None, f"{where}: {column} empty in the CSV but ours is {mine}"
                    both_undefined[column] += 1
                elif mine is not None and same(mine, theirs):
                    matched[column] += 1
                elif column == "probing_ratio":
                    # Reason 1: their count ignored the label "inquiry".
                    assert "inquiry" in row.actions, f"{where}: probing {mine} != {theirs}"
                    n = len(row.actions)
                    assert same(mine - row.actions.count("inquiry") / n, theirs), where
                    assert same(row.actions.count("inquire") / n, theirs), where
                    explained[column] += 1
                else:
                    # Reason 2: a deal metric published for an Accepted row without a price.
                    assert column in DEAL_COLUMNS and mine is None, (
                        f"{where}: {column} {mine} != {theirs}"
                    )
                    assert f.path.name == "finetune-3B-buyer+finetune-3B-seller.csv", where
                    assert row.agreed and row.accepted_price is None, where
                    assert all(p is None for p in row.prices), where
                    at_listing = recompute(row, row.listing_price)
                    assert same(at_listing[key], theirs), f"{where}: {column} at listing price"
                    explained[column] += 1

    assert rows == 2700
    # 2,123 rows have a deal with a price; 572 have none; 5 are reason 2.
    for column in DEAL_COLUMNS:
        assert (matched[column], both_undefined[column], explained[column]) == (2123, 572, 5), (
            column
        )
    assert (matched["dialogue_length"], both_undefined["dialogue_length"]) == (2700, 0)
    # probing_ratio is published in 87 of the 90 files (2,610 rows); 4 rows are reason 1.
    assert (
        matched["probing_ratio"],
        both_undefined["probing_ratio"],
        explained["probing_ratio"],
    ) == (2606, 0, 4)


def _priced(row) -> list[float]:
    return [p for p in row.prices if p is not None]


def test_their_concession_rate_and_relative_efficiency_are_other_formulas(files):
    """Why those two columns are not reproduced: per file, they hold one of two formulas,
    neither of them ours (bot/negotiation/metrics.py: sum of |price steps| / L and fairness / L)."""
    concession_kinds: Counter[str] = Counter()
    efficiency_kinds: Counter[str] = Counter()
    for f in files:
        kinds = set()
        for row in f.rows if "concession_rate" in f.columns else []:
            prices, theirs = _priced(row), row.published["concession_rate"]
            steps = list(pairwise(prices))
            # baseline.ipynb: signed steps (they telescope to last - first) / #priced, NaN if none
            signed = sum(b - a for a, b in steps) / len(prices) if prices else None
            # analysis_interactive.ipynb rewrote it: |steps| / #priced, NaN below two prices
            absolute = sum(abs(b - a) for a, b in steps) / len(prices) if len(prices) > 1 else None
            fits = {
                name
                for name, value in (("signed", signed), ("absolute", absolute))
                if (value is None and theirs is None)
                or (value is not None and theirs is not None and same(value, theirs))
            }
            assert fits, f"{f.path.name} line {row.line}: concession_rate {theirs} fits neither"
            kinds.add(frozenset(fits))
        common = frozenset.intersection(*kinds) if kinds else frozenset({"none"})
        assert len(common) >= 1, f"{f.path.name} mixes concession formulas"
        concession_kinds[
            "signed"
            if common == {"signed"}
            else "absolute"
            if common == {"absolute"}
            else "none"
            if common == {"none"}
            else "either"
        ] += 1

        for column in ("rel_efficiency", "rel_eff"):
            if column not in f.columns:
                continue
            kinds = set()
            for row in f.rows:
                fairness, theirs, n = (
                    row.published["fairness"],
                    row.published[column],
                    len(row.actions),
                )
                if fairness is None:
                    assert theirs is None
                    continue
                fits = {
                    name
                    for name, value in (("signed", fairness / n), ("absolute", abs(fairness) / n))
                    if same(value, theirs)
                }
                assert fits, f"{f.path.name} line {row.line}: {column} fits neither"
                kinds.add(frozenset(fits))
            common = frozenset.intersection(*kinds)
            assert common, f"{f.path.name} mixes {column} formulas"
            efficiency_kinds[
                f"{column}:" + ("either" if len(common) == 2 else next(iter(common)))
            ] += 1

    assert concession_kinds == {"signed": 17, "absolute": 70, "none": 3}
    assert efficiency_kinds == {
        "rel_efficiency:signed": 41,
        "rel_efficiency:absolute": 24,
        "rel_efficiency:either": 22,
        "rel_eff:absolute": 24,
        "rel_eff:either": 11,
    }


def test_accepted_price_is_the_last_named_price(files):
    """The deal price their metrics use is ``accepted_price``: the last price named before the
    closing accept/agree, unless a disagree/reject in between cleared it (then empty)."""
    checked = 0
    for f in files:
        if f.path.name.startswith("finetune-"):  # reason 2 above: a different runner
            continue
        for row in f.rows:
            if not row.agreed:
                continue
            current = row.listing_price
            for action, price in zip(row.actions, row.prices, strict=False):
                if price is not None:
                    current = price
                if action in ("disagree", "reject"):
                    current = None
            assert row.accepted_price == current, f"{f.path.name} line {row.line}"
            assert row.actions[-1] in ("accept", "agree"), f"{f.path.name} line {row.line}"
            checked += 1
    assert checked == 2140 - 25  # every Accepted row outside the finetune file (25 there)
