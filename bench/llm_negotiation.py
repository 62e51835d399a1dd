"""Per-turn cost of an LLM-vs-LLM negotiation on the embedded model.

Plays one 15-turn negotiation (the configured `llm-buyer` and `llm-seller` agents by default,
SmolLM2-135M through llama.cpp, each seat on its own llama.cpp instance) and prints, measured in that one run:

(a) prompt tokens llama.cpp evaluated / tokens in the agents' final contexts (goal <= 1.3),
    beside the baseline a stateless generate call per turn costs: every prompt evaluated in
    full (the sum of prompt sizes over the same calls);
(c) wall time spent outside llama.cpp calls as a share of the whole negotiation (goal <= 10%).

    .venv/bin/python bench/llm_negotiation.py [--scenarios 5] [--seed 0] [--buyer A --seller B]

It tries the agreemate scenarios in order until one runs all 15 turns (most do).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.agent_factory import AgentFactory  # noqa: E402
from bot.agreemate import load_agreemate_scenarios  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.negotiation.runner import run_negotiation  # noqa: E402


class Metered:
    """Wraps a backend: records every ChatResult (time inside llama.cpp, token counts)."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def chat(self, *args, **kwargs):
        result = await self.inner.chat(*args, **kwargs)
        self.results.append(result)
        return result


async def main(args: argparse.Namespace) -> int:
    cfg = load_config()
    factory = AgentFactory(cfg)
    try:
        for scenario in load_agreemate_scenarios()[: args.scenarios]:
            buyer = factory.build(args.buyer, "buyer", seed=args.seed, seat=f"bench-b-{scenario.id}")
            seller = factory.build(args.seller, "seller", seed=args.seed, seat=f"bench-s-{scenario.id}")
            meters = [Metered(buyer.backend), Metered(seller.backend)]
            buyer.backend, seller.backend = meters
            await meters[0].load()
            await meters[1].load()
            t0 = time.perf_counter()
            record = await run_negotiation(scenario, buyer, seller, max_turns=15)
            wall = time.perf_counter() - t0
            if len(record.turns) == 15:
                break
            print(f"{scenario.title[:40]!r}: ended after {len(record.turns)} turns ({record.outcome.value}); next")
    finally:
        await factory.aclose()
    results = [r for m in meters for r in m.results]
    evaluated = sum(r.prompt_tokens_evaluated or 0 for r in results)
    naive = sum(r.prompt_tokens for r in results)
    final_context = sum(m.results[-1].prompt_tokens + (m.results[-1].completion_tokens or 0)
                        for m in meters if m.results)
    inside = sum(r.seconds for r in results)
    fallbacks = sum(t.fallback for t in record.turns)
    repaired = sum(t.repaired for t in record.turns)
    print(f"negotiation: {len(record.turns)} turns, {len(results)} model calls "
          f"({repaired} repaired turns, {fallbacks} fallback turns), outcome {record.outcome.value}")
    print(f"(a) prompt tokens evaluated / final context tokens: {evaluated} / {final_context} = "
          f"{evaluated / final_context:.2f}   (goal <= 1.3)")
    print(f"    stateless baseline (whole prompt every call):  {naive} / {final_context} = "
          f"{naive / final_context:.2f}   -> prefix reuse evaluates {naive / max(evaluated, 1):.1f}x fewer tokens")
    print(f"(c) wall time outside llama.cpp calls: {wall - inside:.2f} s of {wall:.2f} s = "
          f"{(wall - inside) / wall:.1%}   (goal <= 10%)")
    print(f"    mean seconds per turn: {wall / len(record.turns):.2f}; tokens generated per second "
          f"inside calls: {sum(r.completion_tokens or 0 for r in results) / inside:.1f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buyer", default="llm-buyer", help="buyer agent (default: the paper's llm policy)")
    parser.add_argument("--seller", default="llm-seller", help="seller agent")
    sys.exit(asyncio.run(main(parser.parse_args())))
