"""bench/anac.py's wrapper: this project's agents as NegMAS SAO negotiators (skipped where the
dev extra's negmas is not installed)."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("negmas")
pytest.importorskip("negmas_genius_agents")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import anac

from bot.negotiation.scenario import Scenario


@pytest.fixture
def sc():
    return Scenario.build(id="bike", title="Road bike", listing_price=200, buyer_target=150)


def test_domain_is_the_zone_on_the_rounding_grid(sc):
    values = anac.domain(sc)
    assert values[0] == 140 and values[-1] == 200 and all(v % 5 == 0 for v in values)
    assert anac.seller_utility(sc, 140) == 0 and anac.seller_utility(sc, 200) == 1


def test_hybrid_agrees_with_a_conceder_and_holds_against_a_hardliner(sc):
    ours = anac.our_agents(anac.load_policy_class(None))
    deal = anac.negotiate(sc, "hybrid", "ConcederTBNegotiator", ours)
    assert deal is not None and 0 <= deal[0] <= 1 and abs(sum(deal) - 1) < 1e-9
    as_seller = anac.negotiate(sc, "ConcederTBNegotiator", "hybrid", ours)
    assert as_seller is not None and as_seller[1] > 0.3
    # a side that never moves from its best price gets no deal from the hybrid policy
    assert anac.negotiate(sc, "hybrid", "TimeDependentAgentHardliner", ours) is None
