"""The hybrid policy against ANAC competition agents no one here wrote (NegMAS).

A bench/dev dependency only (``pip install -e '.[dev]'`` brings ``negmas`` and
``negmas-genius-agents``); the bot never needs it.

    PYTHONPATH=. python bench/anac.py                                  # today's policy
    git show 302961a:bot/negotiation/policy.py > /tmp/old_policy.py
    PYTHONPATH=. python bench/anac.py --policy-file /tmp/old_policy.py # another policy file

Setting: the paper's 30 scenarios as single-issue price domains: the price on the item's
rounding grid between the two reservation prices (seller bottom line 0.7 x listing, buyer
ceiling 1.0 x listing, config.toml's fractions), utilities normalised on them: the seller's
(p - bottom) / (ceiling - bottom), the buyer's 1 minus that, no agreement 0 for both. NegMAS's
SAO protocol, one offer per step, 15 steps (the game's turn cap), the buyer opens. The hybrid
policy (ConcessionPolicy, fair personality: the default agents' policy, without chatter) and
the rule agent are wrapped as SAO negotiators that see the offers as the turns of a game.
Every agent meets every other in both roles on every scenario (round-robin); per agent: agreement
rate, mean utility (no agreement = 0), its rank in the field by mean utility, and the mean
distance to the Nash point (0.5, 0.5) in the normalised utility plane (no agreement: from (0, 0)).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.negotiation.agents import DialogueState, RuleAgent
from bot.negotiation.guard import guard_turn
from bot.negotiation.scenario import Scenario, rounding_step
from bot.negotiation.turns import Act, Role, Turn

MAX_TURNS = 15
ANAC = ("AgentK", "Atlas3", "CUHKAgent", "HardHeaded", "Gahboninho", "IAMhaggler2011", "AgentGG",
        "PonPokoAgent", "Caduceus", "ParsAgent", "TheNegotiatorReloaded", "NiceTitForTat", "AgentX",
        "Yushu")
NEGMAS = ("BoulwareTBNegotiator", "ConcederTBNegotiator", "NaiveTitForTatNegotiator")


def load_policy_class(path: str | None) -> Any:
    if not path:
        from bot.negotiation.policy import ConcessionPolicy

        return ConcessionPolicy
    spec = importlib.util.spec_from_file_location("policy_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.ConcessionPolicy


def domain(sc: Scenario) -> list[float]:
    step = rounding_step(sc.listing_price)
    lo = math.ceil(sc.seller_reservation / step - 1e-9) * step
    values, p = [], lo
    while p <= sc.buyer_reservation + 1e-9:
        values.append(round(p, 2))
        p += step
    return values


def seller_utility(sc: Scenario, price: float) -> float:
    return (price - sc.seller_reservation) / (sc.buyer_reservation - sc.seller_reservation)


def _make_negotiator_class():
    from negmas.sao import ResponseType, SAONegotiator

    class GameNegotiator(SAONegotiator):
        """An agent of this project in an SAO negotiation: the offers so far become the
        turns of a game (the policy's own view), its proposals snap to the domain grid."""

        def __init__(self, *, decide, role: Role, scenario: Scenario, values: list[float],
                     max_turns: int = MAX_TURNS, **kw):
            super().__init__(**kw)
            self.decide, self.role, self.sc, self.values = decide, role, scenario, values
            self.max_turns = max_turns
            self.turns: list[Turn] = []
            self.planned: Turn | None = None

        def _state(self) -> DialogueState:
            return DialogueState(self.sc, self.role, tuple(self.turns), self.max_turns)

        def _snap(self, price: float) -> float:
            return min(self.values, key=lambda v: abs(v - price))

        def _their(self, offer: Any) -> None:
            if offer is not None:
                self.turns.append(Turn(self.role.other, Act.COUNTER_PRICE, float(offer[0]), ""))

        def respond(self, state, source=None):
            self._their(state.current_offer)
            turn = self.decide(self._state())
            if turn.act is Act.ACCEPT:
                return ResponseType.ACCEPT_OFFER
            if turn.act in (Act.QUIT, Act.REJECT):
                return ResponseType.END_NEGOTIATION
            self.planned = turn
            return ResponseType.REJECT_OFFER

        def propose(self, state, dest=None):
            turn, self.planned = self.planned, None
            if turn is None:  # opening (nothing to respond to) or a turn without a price
                turn = self.decide(self._state())
            price = turn.price if turn.price is not None else self.turns[-1].price if self.turns else None
            if price is None:
                price = self.sc.target(self.role)
            price = self._snap(price)
            self.turns.append(Turn(self.role, Act.COUNTER_PRICE, price, ""))
            return (price,)

    return GameNegotiator


def our_agents(policy_cls: Any, deadline_take: float | None = None) -> dict[str, Any]:
    """name -> decide(DialogueState) -> Turn, for this project's agents (``deadline_take``:
    the hybrid's, instead of the fair personality's)."""
    from bot.negotiation.policy import PERSONALITY_PARAMS

    fair = PERSONALITY_PARAMS["fair"]
    params = getattr(sys.modules[policy_cls.__module__], "PERSONALITY_PARAMS", {"fair": fair})["fair"]
    params = replace(params, chatter=0.0)
    if deadline_take is not None:
        params = replace(params, deadline_take=deadline_take)
    policy = policy_cls(params, seed=0)
    rule = RuleAgent("rule", chatter=0.0, seed=0)

    def hybrid(state: DialogueState) -> Turn:  # the hybrid agent's move: the plan, then the guard
        plan = policy.plan(state)
        return guard_turn(Turn(state.role, plan.act, plan.price, ""), state.scenario, state.turns)

    def rule_agent(state: DialogueState) -> Turn:
        return _sync(rule.respond(state))

    return {"hybrid": hybrid, "rule": rule_agent}


def _sync(coro: Any) -> Any:
    """Drive a coroutine that never suspends (the rule agent's respond) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the agent suspended; it cannot run inside an SAO step")


def make(name: str, role: Role, sc: Scenario, values: list[float], ours: dict[str, Any],
         steps: int = MAX_TURNS) -> Any:
    if name in ours:
        return _make_negotiator_class()(decide=ours[name], role=role, scenario=sc, values=values,
                                        max_turns=steps, name=f"{name}-{role.value}")
    if name in NEGMAS:
        from negmas import sao

        return getattr(sao, name)(name=f"{name}-{role.value}")
    import negmas_genius_agents as genius

    return getattr(genius, name)(name=f"{name}-{role.value}")


def negotiate(sc: Scenario, buyer: str, seller: str, ours: dict[str, Any],
              steps: int = MAX_TURNS) -> tuple[float, float] | None:
    """(buyer utility, seller utility) of the agreement, or None."""
    from negmas import SAOMechanism, make_issue
    from negmas.outcomes import make_os
    from negmas.preferences import LinearAdditiveUtilityFunction
    from negmas.preferences.value_fun import AffineFun

    values = domain(sc)
    space = make_os([make_issue(values=values, name="price")])
    span = sc.buyer_reservation - sc.seller_reservation
    s_fun = AffineFun(1 / span, -sc.seller_reservation / span)
    b_fun = AffineFun(-1 / span, sc.buyer_reservation / span)
    m = SAOMechanism(outcome_space=space, n_steps=steps, one_offer_per_step=True)
    m.add(make(buyer, Role.BUYER, sc, values, ours, steps),
          preferences=LinearAdditiveUtilityFunction(values=[b_fun], weights=[1.0], outcome_space=space,
                                                    reserved_value=0.0))
    m.add(make(seller, Role.SELLER, sc, values, ours, steps),
          preferences=LinearAdditiveUtilityFunction(values=[s_fun], weights=[1.0], outcome_space=space,
                                                    reserved_value=0.0))
    state = m.run()
    if state.agreement is None:
        return None
    u = seller_utility(sc, float(state.agreement[0]))
    return 1 - u, u


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy-file", default="", help="a policy.py to test instead of today's")
    ap.add_argument("--scenarios", type=int, default=30, help="the first N of the paper's 30")
    ap.add_argument("--field", default="", help="comma-separated agent names (default: all)")
    ap.add_argument("--steps", type=int, default=MAX_TURNS,
                    help="offers before the deadline (default: the game's turn cap, 15)")
    ap.add_argument("--deadline-take", type=float, default=None,
                    help="the hybrid's chance of taking a committed offer on its last turn (default: the fair "
                         "personality's)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bot.config import load_config
    from bot.scenarios import load_scenario_set

    scenarios = load_scenario_set(load_config(None), "agreemate")[: args.scenarios]
    ours = our_agents(load_policy_class(args.policy_file or None), args.deadline_take)
    field = [n for n in args.field.split(",") if n] or [*ours, *ANAC, *NEGMAS]
    stats = {n: {"u": [], "deals": 0, "n": 0, "nash": [], "as_buyer": [], "as_seller": []} for n in field}
    versus: dict[tuple[str, str], list] = {}  # (ours, opponent) -> [games, deals, utility sum]
    t0 = time.perf_counter()
    for sc in scenarios:
        for buyer in field:
            for seller in field:
                if buyer == seller:
                    continue
                try:
                    result = negotiate(sc, buyer, seller, ours, args.steps)
                except Exception as exc:  # noqa: BLE001 (an ANAC port that breaks: no agreement, said)
                    print(f"  {buyer} vs {seller} on {sc.id[:8]} failed: {type(exc).__name__}: {exc}",
                          file=sys.stderr)
                    result = None
                ub, us = result if result is not None else (0.0, 0.0)
                for me, other, u in ((buyer, seller, ub), (seller, buyer, us)):
                    if me in ours:
                        pair = versus.setdefault((me, other), [0, 0, 0.0])
                        pair[0] += 1
                        pair[1] += result is not None
                        pair[2] += u
                dist = math.hypot(ub - 0.5, us - 0.5)
                for name, u, role in ((buyer, ub, "as_buyer"), (seller, us, "as_seller")):
                    s = stats[name]
                    s["u"].append(u)
                    s[role].append(u)
                    s["n"] += 1
                    s["deals"] += result is not None
                    s["nash"].append(dist)
    rows = sorted(((n, statistics.fmean(s["u"]), s["deals"] / s["n"], statistics.fmean(s["nash"]),
                    statistics.fmean(s["as_buyer"]), statistics.fmean(s["as_seller"]))
                   for n, s in stats.items()), key=lambda r: -r[1])
    print(f"{len(field)} agents, {len(scenarios)} scenarios, {args.steps} steps, "
          f"{len(field) * (len(field) - 1) * len(scenarios)} negotiations, {time.perf_counter() - t0:.0f}s")
    print("| rank | agent | mean utility | as buyer | as seller | agreement | distance to Nash |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for rank, (n, u, agree, nash, ub, us) in enumerate(rows, 1):
        mark = "**" if n in ours else ""
        print(f"| {rank} | {mark}{n}{mark} | {u:.3f} | {ub:.3f} | {us:.3f} | {100 * agree:.0f}% | {nash:.3f} |")
    mine = [n for n in ours if n in field]
    if mine:
        print("\nAgainst each opponent, both roles (agreement / mean utility):")
        print("| opponent | " + " | ".join(mine) + " |")
        print("|---|" + "---:|" * len(mine))
        for other in field:
            if other in ours:
                continue
            cells = []
            for me in mine:
                games, deals, total = versus.get((me, other), [0, 0, 0.0])
                cells.append(f"{100 * deals / games:.0f}% / {total / games:.2f}" if games else "–")
            print(f"| {other} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
