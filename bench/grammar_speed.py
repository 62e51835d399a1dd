"""Does JSON-schema-constrained decoding slow generation down? (goal: ratio >= 0.85)

Runs the same negotiation prompts on the embedded model (SmolLM2-135M Q4_1) in three modes,
interleaved per prompt so that machine noise hits all alike:

- free: no schema;
- schema: the reply schema's grammar, sampled the way haggle's backend does by default
  (draw, check that one token against the grammar, redraw from the masked vocabulary only
  when it is rejected; llama.cpp's own common sampler works this way);
- schema-full: llama-cpp-python's stock sampler, which checks all ~50k vocabulary entries
  against the grammar for every token (what a plain create_chat_completion does).

It prints tokens/s for each and the ratios to free:

- generation tok/s: completion tokens / (call time - prompt-eval time), the prompt-eval time
  taken from llama.cpp's own counters; this is where grammar sampling costs;
- end-to-end tok/s: completion tokens / whole call time (grammar compilation included).

Every call starts from an empty cache, so all modes pay the same prompt evaluation.

    .venv/bin/python bench/grammar_speed.py [--rounds 2] [--threads N] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.agreemate import load_agreemate_scenarios  # noqa: E402
from bot.llm.base import Sampling
from bot.llm.llamacpp import LlamaCppBackend
from bot.negotiation.prompts import build_messages, reply_schema  # noqa: E402
from bot.negotiation.turns import Act, Role, Turn  # noqa: E402

# The agents' own reply schema and prompts (policy "llm"), on six of the paper's scenarios, each
# after one opening message of the counterpart.
SCHEMA = reply_schema()


def situations() -> list[list[dict[str, str]]]:
    out = []
    for i, scenario in enumerate(load_agreemate_scenarios()[:6]):
        role = Role.SELLER if i % 2 == 0 else Role.BUYER
        if role is Role.SELLER:  # the buyer names a price below the listing
            price = round(scenario.listing_price * 0.6)
            opening = Turn(Role.BUYER, Act.INIT_PRICE, price, f"Hi! Would you take ${price:,}?")
        else:
            opening = Turn(Role.SELLER, Act.INTRO, None, "Hello! It's still available.")
        out.append(build_messages(scenario, role, [opening]))
    return out


async def measure(backend: LlamaCppBackend, msgs, schema, sampling) -> tuple[float, float, int]:
    """(generation tok/s, end-to-end tok/s, completion tokens) for one call on an empty cache."""
    await backend.reset_cache()  # same start for both modes: the whole prompt is evaluated
    before = backend.perf_counters()
    result = await backend.chat(msgs, schema=schema, sampling=sampling)
    after = backend.perf_counters()
    prompt_seconds = (after["t_p_eval_ms"] - before["t_p_eval_ms"]) / 1000
    tokens = result.completion_tokens or 0
    return tokens / (result.seconds - prompt_seconds), tokens / result.seconds, tokens


MODES = (("free", None, True), ("schema", SCHEMA, True), ("schema-full", SCHEMA, False))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()

    backend = LlamaCppBackend("embedded", name="bench", n_ctx=1024, n_threads=args.threads)
    await backend.load()
    print(f"model: {backend.model_path.name}, threads: {backend.n_threads}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    gen: dict[str, list[float]] = {mode: [] for mode, _, _ in MODES}
    e2e: dict[str, list[float]] = {mode: [] for mode, _, _ in MODES}
    tokens = dict.fromkeys(gen, 0)
    for round_ in range(args.rounds):
        for i, msgs in enumerate(situations()):
            sampling = Sampling(temperature=0.7, max_tokens=args.max_tokens, seed=100 * round_ + i)
            for mode, schema, checked in MODES:
                backend.checked_grammar = checked
                g, e, n = await measure(backend, msgs, schema, sampling)
                gen[mode].append(g)
                e2e[mode].append(e)
                tokens[mode] += n
    await backend.aclose()

    free_gen, free_e2e = statistics.median(gen["free"]), statistics.median(e2e["free"])
    print(f"{'mode':12s} {'calls':>5s} {'tokens':>6s} {'gen tok/s':>10s} {'ratio':>6s} "
          f"{'e2e tok/s':>10s} {'ratio':>6s}   (medians)")
    for mode, speeds in gen.items():
        g, e = statistics.median(speeds), statistics.median(e2e[mode])
        print(f"{mode:12s} {len(speeds):5d} {tokens[mode]:6d} {g:10.1f} {g / free_gen:6.2f} "
              f"{e:10.1f} {e / free_e2e:6.2f}")
    ratio = statistics.median(gen["schema"]) / free_gen
    print(f"schema/free generation ratio {ratio:.2f}: "
          f"{'meets' if ratio >= 0.85 else 'MISSES'} the 0.85 goal")


if __name__ == "__main__":
    asyncio.run(main())
