import asyncio

import pytest

from bot.negotiation.agents import DialogueState, RuleAgent
from bot.negotiation.runner import Negotiation, NegotiationRecord, run_negotiation
from bot.negotiation.turns import Act, Outcome, Role, Turn


class Scripted:
    """Plays a fixed list of (act, price, text); sees what the runner showed it."""

    def __init__(self, name, moves):
        self.name, self.moves, self.seen = name, list(moves), []

    async def respond(self, state: DialogueState) -> Turn:
        self.seen.append(state)
        move = self.moves.pop(0)
        if isinstance(move, BaseException):
            raise move
        if callable(move):
            return await move(state) if asyncio.iscoroutinefunction(move) else move(state)
        act, price, text = move
        return Turn(state.role, act, price, text)


async def test_accept_closes_at_counterparts_standing_price(scenario):
    buyer = Scripted("b", [(Act.INIT_PRICE, 150, "150?"), (Act.ACCEPT, None, "ok deal")])
    seller = Scripted("s", [(Act.COUNTER_PRICE, 180, "180")])
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.outcome is Outcome.DEAL and rec.deal_price == 180
    assert rec.turns[-1].price == 180  # the accept records the price it took
    assert rec.metrics["agreed"] is True and rec.metrics["dialogue_length"] == 3
    assert [t.role for t in rec.turns] == [Role.BUYER, Role.SELLER, Role.BUYER]
    assert all(t.seconds > 0 for t in rec.turns)


@pytest.mark.parametrize("act, outcome", [(Act.REJECT, Outcome.REJECT), (Act.QUIT, Outcome.QUIT)])
async def test_reject_and_quit_end_without_deal(scenario, act, outcome):
    buyer = Scripted("b", [(Act.INIT_PRICE, 50, "50")])
    seller = Scripted("s", [(act, None, "no")])
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.outcome is outcome and rec.deal_price is None and len(rec.turns) == 2


async def test_turn_cap_ends_with_no_deal(scenario):
    buyer = Scripted("b", [(Act.COUNTER_PRICE, 100, "100")] * 10)
    seller = Scripted("s", [(Act.COUNTER_PRICE, 190, "190")] * 10)
    rec = await run_negotiation(scenario, buyer, seller, max_turns=6)
    assert rec.outcome is Outcome.TURN_LIMIT and len(rec.turns) == 6 and rec.deal_price is None


async def test_seller_can_move_first(scenario):
    buyer = Scripted("b", [(Act.ACCEPT, None, "deal")])
    seller = Scripted("s", [(Act.INIT_PRICE, 190, "190")])
    rec = await run_negotiation(scenario, buyer, seller, first_mover="seller")
    assert rec.turns[0].role is Role.SELLER and rec.deal_price == 190


async def test_raising_agent_ends_as_error_with_reason(scenario):
    buyer = Scripted("b", [(Act.INIT_PRICE, 150, "150")])
    seller = Scripted("s", [RuntimeError("model exploded")])
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.outcome is Outcome.ERROR and "model exploded" in rec.error and "seller" in rec.error
    assert len(rec.turns) == 1


@pytest.mark.parametrize("move, reason", [
    ((Act.ACCEPT, None, "deal"), "no offer on the table"),
    (lambda s: Turn(Role.SELLER, Act.INTRO, None, "wrong seat"), "buyer's turn"),
    (lambda s: "not a turn", "expected a Turn"),
])
async def test_invalid_turns_end_as_error(scenario, move, reason):
    buyer = Scripted("b", [move])
    seller = Scripted("s", [])
    rec = await run_negotiation(scenario, buyer, seller)
    assert rec.outcome is Outcome.ERROR and reason in rec.error


async def test_slow_agent_times_out(scenario):
    async def slow(state):
        await asyncio.sleep(5)

    rec = await run_negotiation(scenario, Scripted("b", [slow]), Scripted("s", []), turn_timeout=0.05)
    assert rec.outcome is Outcome.ERROR and "longer than 0.05s" in rec.error


async def test_counterpart_never_sees_hidden_thoughts(scenario):
    def thinking(state):
        return Turn(Role.BUYER, Act.INIT_PRICE, 150, "150?", thought="my ceiling is 200")

    seller = Scripted("s", [(Act.REJECT, None, "no")])
    await run_negotiation(scenario, Scripted("b", [thinking]), seller)
    assert seller.seen[0].turns[0].thought is None


async def test_record_json_round_trip(scenario):
    rec = await run_negotiation(scenario, RuleAgent("rb", seed=1), RuleAgent("rs", seed=2))
    again = NegotiationRecord.from_dict(rec.to_dict())
    assert again.to_dict() == rec.to_dict()


def test_negotiation_refuses_turns_after_the_end(scenario):
    n = Negotiation(scenario, buyer="b", seller="s")
    n.apply(Turn(Role.BUYER, Act.QUIT, None, "bye"))
    with pytest.raises(Exception, match="over"):
        n.apply(Turn(Role.SELLER, Act.INTRO, None, "wait"))
