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


def test_hybrid_agrees_with_a_conceder_and_takes_a_hardliners_last_offer(sc):
    ours = anac.our_agents(anac.load_policy_class(None))
    deal = anac.negotiate(sc, "hybrid", "ConcederTBNegotiator", ours)
    assert deal is not None and 0 <= deal[0] <= 1 and abs(sum(deal) - 1) < 1e-9
    as_seller = anac.negotiate(sc, "ConcederTBNegotiator", "hybrid", ours)
    assert as_seller is not None and as_seller[1] > 0.3
    # a side that never moves from its best price (the hybrid's reservation) gets it on the
    # hybrid's last turn, a deal worth what no deal is worth to the hybrid, and nothing more
    for buyer, seller, mine in (("hybrid", "TimeDependentAgentHardliner", 0),
                                ("TimeDependentAgentHardliner", "hybrid", 1)):
        deal = anac.negotiate(sc, buyer, seller, ours)
        assert deal is not None and deal[mine] == 0
