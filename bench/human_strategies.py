"""Scripted people against the default agents, through `haggle play`'s own code path.

Every strategy is a person typing lines: each line goes through the same function `haggle
play` runs (bot.commands.play.new_game + play_session: the private limit drawn for the game,
the rule-based parser reading the person's text, the agent's policy, the guard, the
Negotiation rules). The agent is built by the same AgentFactory from config.toml's default
agent for its seat; only its words differ with ``--narrator template``: the model is replaced
by a backend that always fails, so the hybrid agent says its policy's move with its template
(the path LLMAgent takes when the model stumbles). Prices and acts come from the policy either
way; ``--narrator model`` runs the embedded model (slow on 2 cores) to show they agree.

    PYTHONPATH=. python bench/human_strategies.py                      # 30 scenarios x 16 strategies
    PYTHONPATH=. python bench/human_strategies.py --reservation-spread 0.1  # another private range
    PYTHONPATH=. python bench/human_strategies.py --narrator model --scenarios 3 \
        --strategies stubborn-fraction,fair --compare
    PYTHONPATH=. python bench/human_strategies.py --pairings          # hybrid vs hybrid, personality table
    PYTHONPATH=. python bench/human_strategies.py --stubborn-sweep    # the one-price sweep, price by price

``one-price-best``: a person repeating one price, the best of a sweep of prices across the
range the bot's private limit is drawn from (sweep_prices): the best a script that knows the
range, but not the game's draw, can pick; reported with the price it found.

Surplus share: the person's share of the bargaining zone (between the bot's private limit
and the person's own, the published fraction) in a deal, 0 without one (no deal is worth
nothing), averaged over the scenarios; deal rate: deals / games.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Config, load_config
from bot.errors import ModelError
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario, round_price
from bot.negotiation.turns import Role

# --------------------------------------------------------------------------- the people


@dataclass
class Person:
    """A scripted person: ``line(game, k)`` is what it types on its k-th turn (0-based)."""

    name: str
    role: Role
    speak: Callable[[Person, Any, int], str]
    # a person's own limit: the published fraction (buyer pays up to the listing, seller
    # goes down to 0.7 x listing)

    def line(self, game: Any, k: int) -> str:
        return self.speak(self, game, k)


def _sc(game: Any) -> Scenario:
    return game.scenario


def _r(price: float, game: Any) -> float:
    return round_price(price, _sc(game).listing_price)


def _last(game: Any, k: int) -> bool:
    """Whether this is the person's last turn (the bot would get one more at most)."""
    return game.turns_left <= 2


def _better(role: Role, offer: float | None, than: float) -> bool:
    """Whether the bot's ``offer`` is at least as good for the person as ``than``."""
    if offer is None:
        return False
    return offer <= than + 1e-9 if role is Role.BUYER else offer >= than - 1e-9


def _dir(role: Role) -> float:
    return 1.0 if role is Role.BUYER else -1.0  # a buyer concedes upward, a seller downward


def _published(role: Role, listing: float) -> float:
    return listing * (1.0 if role is Role.BUYER else 0.7)


def stubborn(fraction_buyer: float, fraction_seller: float, words: str) -> Callable:
    def speak(p: Person, game: Any, k: int) -> str:
        f = fraction_buyer if p.role is Role.BUYER else fraction_seller
        return words.format(x=money(f * _sc(game).listing_price))  # exactly the fraction
    return speak


def nibbler(p: Person, game: Any, k: int) -> str:
    """Starts at the published fraction of the bot's limit, moves 1% of the listing a turn."""
    listing = _sc(game).listing_price
    start = 0.7 if p.role is Role.BUYER else 1.0
    x = _r((start + _dir(p.role) * 0.01 * k) * listing, game)
    if _better(p.role, game.agent_offer, x):
        return "deal"
    return f"How about {money(x)}?"


def split_difference(p: Person, game: Any, k: int) -> str:
    sc = _sc(game)
    mine, theirs = game.human_offer, game.agent_offer
    if theirs is None:
        return f"I'd like to pay {money(sc.target(p.role))}." if p.role is Role.BUYER else \
            f"I'm asking {money(sc.target(p.role))}."
    if mine is None:
        mine = sc.target(p.role)
    if abs(theirs - mine) <= 0.01 * sc.listing_price or _better(p.role, theirs, mine):
        return "deal"
    return f"Let's split the difference: {money(_r((mine + theirs) / 2, game))}."


def desperate(p: Person, game: Any, k: int) -> str:
    """Pleads (NegotiationArena's 'desperate' persona): 0.6 x listing (seller: the listing),
    2% more a turn, takes any offer within 2% of its own."""
    listing = _sc(game).listing_price
    start = 0.6 if p.role is Role.BUYER else 1.0
    x = _r((start + _dir(p.role) * 0.02 * k) * listing, game)
    if _better(p.role, game.agent_offer, x + _dir(p.role) * 0.02 * listing):
        return "deal"
    if p.role is Role.BUYER:
        return (f"Please, I'm a student and I really need this for work. I can only afford "
                f"{money(x)}, it's all I have.")
    return f"Please, I need the money for rent this week. I really need {money(x)} for it."


def threats(p: Person, game: Any, k: int) -> str:
    """Holds 0.65 x listing (seller: 1.05 x) with threats; on its last turn takes the bot's
    offer if it is within 10% of the listing from its own, else walks away."""
    listing = _sc(game).listing_price
    x = _r((0.65 if p.role is Role.BUYER else 1.05) * listing, game)
    if _last(game, k):
        return "deal" if _better(p.role, game.agent_offer, x + _dir(p.role) * 0.15 * listing) else "bye"
    if p.role is Role.BUYER:
        return f"{money(x)} or I walk, and I'll leave you a bad review. Last chance."
    return f"{money(x)} or I sell it to someone else today and you lose it. Last chance."


def fair(p: Person, game: Any, k: int) -> str:
    """Starts at its target, concedes 5% of the listing a turn (never past its own published
    limit), accepts what is fair: an offer as good as its next one, or one at least as good as
    the middle between its target and its limit."""
    sc = _sc(game)
    target, listing = sc.target(p.role), sc.listing_price
    limit = _published(p.role, listing)
    x = target + _dir(p.role) * 0.05 * listing * k
    x = _r(min(x, limit) if p.role is Role.BUYER else max(x, limit), game)
    if _better(p.role, game.agent_offer, x) or _better(p.role, game.agent_offer, (target + limit) / 2):
        return "deal"
    return f"I could do {money(x)}." if k else f"Hi! Would you take {money(x)}?"


STRATEGY_WORDS = {"stubborn-fraction": "I can pay {x}, that's my final offer."}
STRATEGIES: dict[str, Callable] = {
    "stubborn-fraction": stubborn(0.7, 1.0, STRATEGY_WORDS["stubborn-fraction"]),
    "stubborn-low": stubborn(0.5, 1.2, "{x}, take it or leave it. That's final."),
    "nibbler": nibbler,
    "split-difference": split_difference,
    "desperate": desperate,
    "threats": threats,
    "fair": fair,
}
# the seller-side stubborn lines say what a seller would say
SELLER_WORDS = {"stubborn-fraction": "I won't take less than {x}, that's my final price.",
                "stubborn-low": "{x}, take it or leave it. That's final."}


SWEEP_STEP = 0.025  # x listing, between the prices the sweep tries


def sweep_prices(cfg: Config, role: Role) -> list[float]:
    """The one prices (x listing) a stubborn person in ``role`` is swept over: across the range
    the bot's private limit is drawn from (its published fraction +- the spread) and two steps
    past it on the person's side. A price beyond the range on the bot's side never gets a deal;
    one further past it on the person's side gets a deal at a worse price than the range's edge."""
    spread = cfg.negotiation.reservation_spread
    bot = cfg.negotiation.seller_bottom_fraction if role is Role.BUYER else cfg.negotiation.buyer_ceiling_fraction
    toward = 1.0 if role is Role.BUYER else -1.0  # the person's side: a buyer pays more
    n = round(2 * spread / SWEEP_STEP) + 2
    return [round(bot - toward * spread + toward * SWEEP_STEP * k, 4) for k in range(n + 1)]


def sweep_people(cfg: Config, roles: tuple[Role, ...] = (Role.BUYER, Role.SELLER)) -> list[Person]:
    """A person repeating one price (``one-price-X``, X x listing), for each of sweep_prices."""
    words = {Role.BUYER: STRATEGY_WORDS["stubborn-fraction"], Role.SELLER: SELLER_WORDS["stubborn-fraction"]}
    return [Person(f"one-price-{x:.3f}", role, stubborn(x, x, words[role]))
            for role in roles for x in sweep_prices(cfg, role)]


def best_one_price(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per role, the sweep's best single price (the highest mean surplus share): the strategy
    ``one-price-best``, a summarise() row with its ``price`` (x listing)."""
    swept = [s for s in summarise(rows) if s["strategy"].startswith("one-price-")]
    out = []
    for role in sorted({s["person"] for s in swept}):
        best = max((s for s in swept if s["person"] == role), key=lambda s: s["surplus_share"])
        out.append({**best, "strategy": "one-price-best", "price": float(best["strategy"].rsplit("-", 1)[1])})
    return out


def people() -> list[Person]:
    out = []
    for role in (Role.BUYER, Role.SELLER):
        for name, speak in STRATEGIES.items():
            if role is Role.SELLER and name in SELLER_WORDS:
                speak = stubborn(0.7, 1.0 if name == "stubborn-fraction" else 1.2, SELLER_WORDS[name])
            out.append(Person(name, role, speak))
    return out


# --------------------------------------------------------------------------- the agents


class _FailingPool:
    """A model pool whose backends always fail: the hybrid agent narrates with its template."""

    class _Backend:
        async def chat(self, messages: Any, **kwargs: Any) -> Any:
            raise ModelError("template narrator (bench): no model call")

    def backend(self, model: Any, seat: str) -> Any:
        return self._Backend()

    async def aclose(self) -> None:
        return None


def factory(cfg: Config, narrator: str) -> Any:
    from bot.agent_factory import AgentFactory

    return AgentFactory(cfg, pool=_FailingPool() if narrator == "template" else None)


async def play(cfg: Config, fac: Any, person: Person, scenario: Scenario, seed: int) -> dict[str, Any]:
    from bot.commands.play import new_game, play_session

    bot_role = person.role.other
    agent = fac.build(cfg.default_agent(bot_role), bot_role, seed=seed)
    game, _ = new_game(cfg, scenario, agent, human_role=person.role, seed=seed)
    k = 0

    async def read_line(g: Any) -> str:
        nonlocal k
        text = person.line(g, k)
        k += 1
        return text + "\n"

    record = await play_session(game, read_line, io.StringIO())
    share = record.metrics.get(f"{person.role.value}_surplus_share") if record.deal_price is not None else None
    return {"strategy": person.name, "role": person.role.value, "scenario": scenario.id,
            "deal": record.deal_price is not None, "price": record.deal_price,
            "share": share if share is not None else 0.0,
            "limit": record.scenario.reservation(bot_role), "outcome": record.outcome.value,
            "moves": [(t.role.value, t.act.value, t.price) for t in record.turns]}


async def bench(cfg: Config, narrator: str, scenarios: list[Scenario], who: list[Person],
                seed: int) -> list[dict[str, Any]]:
    fac = factory(cfg, narrator)
    rows = []
    try:
        for person in who:
            for sc in scenarios:
                rows.append(await play(cfg, fac, person, sc, seed))
    finally:
        await fac.aclose()
    return rows


async def pairing(cfg: Config, narrator: str, scenarios: list[Scenario], buyer: str,
                  seller: str) -> dict[str, Any]:
    """Agent vs agent (bot-vs-bot, the tournament's runner) on ``scenarios``: agreement, mean
    fairness and mean bias over the deals (the paper's metrics)."""
    from bot.negotiation.runner import run_negotiation

    fac = factory(cfg, narrator)
    try:
        recs = [await run_negotiation(sc, fac.build(buyer, Role.BUYER), fac.build(seller, Role.SELLER),
                                      max_turns=cfg.negotiation.max_turns,
                                      first_mover=cfg.negotiation.first_mover)
                for sc in scenarios]
    finally:
        await fac.aclose()
    fair = [r.metrics["fairness"] for r in recs if r.metrics.get("fairness") is not None]
    bias = [r.metrics["bias"] for r in recs if r.metrics.get("bias") is not None]
    return {"agreement": sum(r.deal_price is not None for r in recs) / len(recs),
            "fairness": statistics.fmean(fair) if fair else None,
            "bias": statistics.fmean(bias) if bias else None}


PERSONALITY_AGENTS = {"aggressive": "hybrid-aggressive", "fair": "hybrid", "passive": "hybrid-passive"}


def personality_table(cfg: Config, narrator: str, scenarios: list[Scenario]) -> str:
    lines = ["| buyer \\ seller | " + " | ".join(PERSONALITY_AGENTS) + " |", "|---|---|---|---|"]
    for b, bname in PERSONALITY_AGENTS.items():
        cells = []
        for sname in PERSONALITY_AGENTS.values():
            r = asyncio.run(pairing(cfg, narrator, scenarios, f"{bname}-buyer", f"{sname}-seller"))
            cells.append(f"{100 * r['agreement']:.0f}% / {r['fairness']:.2f} / {r['bias']:+.2f}")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    order = list(STRATEGIES)
    keys = sorted({(r["role"], r["strategy"]) for r in rows},
                  key=lambda k: (k[0], order.index(k[1]) if k[1] in order else len(order), k[1]))
    for role, name in keys:
        mine = [r for r in rows if (r["role"], r["strategy"]) == (role, name)]
        out.append({"person": role, "strategy": name, "games": len(mine),
                    "deal_rate": sum(r["deal"] for r in mine) / len(mine),
                    "surplus_share": statistics.fmean(r["share"] for r in mine),
                    "share_in_deals": (statistics.fmean(r["share"] for r in mine if r["deal"])
                                       if any(r["deal"] for r in mine) else None)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="config.toml (default: the repository's)")
    ap.add_argument("--narrator", choices=("template", "model"), default="template")
    ap.add_argument("--scenarios", type=int, default=30, help="the first N of the paper's 30")
    ap.add_argument("--strategies", default="", help="comma-separated names (default: all)")
    ap.add_argument("--roles", default="buyer,seller", help="the person's roles to run")
    ap.add_argument("--seed", type=int, default=0, help="agent seed and private-limit draw")
    ap.add_argument("--json", default="", help="write every game's row to this JSON file")
    ap.add_argument("--pairings", action="store_true",
                    help="instead: hybrid-buyer vs hybrid-seller and the personality table "
                         "(agreement / fairness / bias), agent vs agent")
    ap.add_argument("--stubborn-sweep", action="store_true",
                    help="instead: the whole sweep behind one-price-best, a person repeating one price, for "
                         "prices across the bot's private range")
    ap.add_argument("--reservation-spread", type=float, default=None,
                    help="[negotiation] reservation_spread for this run (default: the config's)")
    ap.add_argument("--compare", action="store_true",
                    help="with --narrator model: also play the same games with the template narrator "
                         "and count the games whose acts and prices agree move for move")
    args = ap.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # every template turn logs the (intended) model failure
    from bot.scenarios import load_scenario_set

    cfg = load_config(args.config)
    if args.reservation_spread is not None:
        cfg = replace(cfg, negotiation=replace(cfg.negotiation, reservation_spread=args.reservation_spread))
        cfg.negotiation.check("--reservation-spread")
    scenarios = load_scenario_set(cfg, "agreemate")[: args.scenarios]
    wanted = {Role.parse(r) for r in args.roles.split(",") if r}
    roles = tuple(r for r in (Role.BUYER, Role.SELLER) if r in wanted)
    print(f"reservation_spread {cfg.negotiation.reservation_spread}")
    if args.stubborn_sweep:
        rows = asyncio.run(bench(cfg, "template", scenarios, sweep_people(cfg, roles), args.seed))
        print("| person | one price, x listing | deal rate | mean surplus share (no deal = 0) |")
        print("|---|---:|---:|---:|")
        for s in summarise(rows):
            print(f"| {s['person']} | {s['strategy'].rsplit('-', 1)[1]} | {100 * s['deal_rate']:.0f}% | "
                  f"{s['surplus_share']:.2f} |")
        for b in best_one_price(rows):
            print(f"best one price, {b['person']}: {b['price']:.3f} x listing, {b['surplus_share']:.2f}")
        return 0
    if args.pairings:
        r = asyncio.run(pairing(cfg, args.narrator, scenarios, "hybrid-buyer", "hybrid-seller"))
        print(f"hybrid-buyer vs hybrid-seller, {len(scenarios)} scenarios: agreement "
              f"{r['agreement']:.2f}, fairness {r['fairness']:.2f}, bias {r['bias']:+.2f}")
        print("Personalities (agreement / mean fairness / mean bias, +1: the buyer got its target):")
        print(personality_table(cfg, args.narrator, scenarios))
        return 0
    names = [n for n in args.strategies.split(",") if n] or [*STRATEGIES, "one-price-best"]
    unknown = set(names) - {*STRATEGIES, "one-price-best"}
    if unknown:
        ap.error(f"unknown strategies {sorted(unknown)}; use some of {[*STRATEGIES, 'one-price-best']}")
    who = [p for p in people() if p.name in names and p.role in roles]
    if "one-price-best" in names:
        who += sweep_people(cfg, roles)
    t0 = time.perf_counter()
    rows = asyncio.run(bench(cfg, args.narrator, scenarios, who, args.seed))
    print(f"{len(rows)} games, narrator {args.narrator}, {time.perf_counter() - t0:.1f}s")
    print("| person | strategy | games | deal rate | mean surplus share (no deal = 0) | share in deals |")
    print("|---|---|---:|---:|---:|---:|")
    table = [s for s in summarise(rows) if not s["strategy"].startswith("one-price-")]
    for b in best_one_price(rows):
        at = len([s for s in table if s["person"] <= b["person"]])
        table.insert(at, {**b, "strategy": f"one-price-best ({b['price']:.3f} x listing, best of "
                                             f"{len(sweep_prices(cfg, Role.parse(b['person'])))} swept)"})
    for s in table:
        in_deals = "–" if s["share_in_deals"] is None else f"{s['share_in_deals']:.2f}"
        print(f"| {s['person']} | {s['strategy']} | {s['games']} | {100 * s['deal_rate']:.0f}% | "
              f"{s['surplus_share']:.2f} | {in_deals} |")
    if args.compare and args.narrator == "model":
        again = asyncio.run(bench(cfg, "template", scenarios, who, args.seed))
        same = sum(a["moves"] == b["moves"] for a, b in zip(rows, again, strict=False))
        print(f"model vs template narrator: {same} of {len(rows)} games with the same acts and "
              f"prices move for move")
        for a, b in zip(rows, again, strict=False):
            if a["moves"] != b["moves"]:
                print(f"  differs: {a['role']} {a['strategy']} {a['scenario'][:8]}: {a['moves']} vs {b['moves']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
