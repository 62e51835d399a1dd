"""`haggle match`: one bot-vs-bot negotiation, printed as a transcript (or a JSON record)."""

from __future__ import annotations

import argparse
import asyncio
import json

from bot.commands._common import add_scenario_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("match", help="one bot-vs-bot negotiation",
                       description="Run one negotiation between two configured agents and print "
                                   "the transcript and metrics.")
    p.add_argument("--buyer", default="buyer", help="buyer agent name (default: buyer)")
    p.add_argument("--seller", default="seller", help="seller agent name (default: seller)")
    add_scenario_args(p)
    p.add_argument("--json", action="store_true", help="print the JSON record instead")
    p.set_defaults(func=run)


def format_transcript(record) -> str:
    """A readable transcript with the outcome and the paper's metrics."""
    from bot.negotiation.prompts import money

    sc = record.scenario
    lines = [f"{sc.title} — listed at {money(sc.listing_price)}",
             f"  buyer {record.buyer!r} (target {money(sc.buyer_target)}, ceiling "
             f"{money(sc.buyer_reservation)}) vs seller {record.seller!r} (target "
             f"{money(sc.seller_target)}, bottom line {money(sc.seller_reservation)})", ""]
    for i, t in enumerate(record.turns, 1):
        price = f" [{t.act.value} {money(t.price)}]" if t.price is not None else f" [{t.act.value}]"
        flags = "".join(f" ({flag})" for flag, on in (("repaired", t.repaired), ("fallback", t.fallback)) if on)
        lines.append(f"{i:2d}. {t.role.value.capitalize():6s} {t.utterance}{price}{flags}")
    deal = f"deal at {money(record.deal_price)}" if record.deal_price is not None else "no deal"
    lines += ["", f"Outcome: {record.outcome.value}, {deal}"
              + (f" — {record.error}" if record.error else "")]
    shown = ("fairness", "bias", "aggressiveness", "dialogue_length", "concession_rate",
             "probing_ratio", "relative_efficiency")
    metrics = ", ".join(f"{k}={_fmt(record.metrics.get(k))}" for k in shown)
    lines.append(f"Metrics: {metrics}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


async def _match(args: argparse.Namespace) -> int:
    from bot.agent_factory import AgentFactory
    from bot.commands._common import load_scenario, resolve_config
    from bot.negotiation.runner import run_negotiation

    cfg = resolve_config(args)
    scenario = load_scenario(cfg, args)
    factory = AgentFactory(cfg)
    try:
        buyer = factory.build(args.buyer, "buyer", seed=args.seed)
        seller = factory.build(args.seller, "seller", seed=args.seed)
        record = await run_negotiation(
            scenario, buyer, seller, max_turns=args.max_turns or cfg.negotiation.max_turns,
            first_mover=cfg.negotiation.first_mover, turn_timeout=cfg.negotiation.turn_timeout_s,
            max_model_failures=cfg.negotiation.max_model_failures)
    finally:
        await factory.aclose()
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    else:
        print(format_transcript(record))
    return 0 if record.outcome.value != "error" else 1


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_match(args))
