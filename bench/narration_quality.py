"""Would a person write these lines? The default agents' narration, measured on unseen items.

Plays the default agents (hybrid `buyer` vs hybrid `seller`, the embedded model narrating the
policy's moves) over a fixed, seeded set of CraigslistBargains *test* scenarios of reading items (never the 30
shipped agreemate ones, never an item a narrator trains on), and for each variant prints, side
by side, the automatic checks of bot/negotiation/narration.py over the model-written lines,
the share of turns that fell back to a template, distinct-1/2 and seconds per turn:

    .venv/bin/python bench/narration_quality.py --scenarios 12 \
        --variant base:lora=none,candidates=1 \
        --variant narrator:candidates=1 \
        --variant narrator+checks:candidates=3 \
        --sample-from narrator+checks --out runs/narration

A variant is NAME:key=value,...: ``lora`` (an adapter folder or file, from the current directory, for every model the
agents use, or none), ``candidates`` (narrations sampled per turn), ``openings`` (``forced``:
the reply's JSON opening decoded with the prompt, as configured by default; ``drawn``: drawn
token by token), ``pick`` (``likeliest``: every candidate drawn, the likeliest passing one said,
as configured by default; ``shortest``: every candidate drawn, the shortest passing one said;
``first``: the first passing one, the rest not drawn), ``sentences``
(``1``: priced moves and accepts in the one sentence that states them; ``none``: as people
write), ``rephrase`` (``on``: when no candidate passes, a round begun with words people begin
the move with; ``off``). Without --variant the config's agents run as they are.

``--sample-from VARIANT`` also writes the blind reading: ``sample.md`` / ``sample.jsonl`` (lines
shuffled, each with the item, the speaker's role and the line before it, and an id only) and,
apart, ``key.json`` (id -> kind: model, template, human; a model line a rephrased round
wrote is marked, and ``--score`` scores those apart too). Kinds: the variant's model-written
lines; template lines (its fallback turns and the rule agents' lines on the same scenarios);
human lines from the same test dialogues. ``--per-kind`` lines of each (default 75). Score a
judged sample with ``--score judged.jsonl`` (lines {"id", "sensible": true|false, "natural":
1-5}) against the key.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.agent_factory import AgentFactory  # noqa: E402
from bot.agreemate import load_agreemate_scenarios  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.data_sources import locate  # noqa: E402
from bot.datasets import load_craigslist, reading_item  # noqa: E402
from bot.errors import ModelError  # noqa: E402
from bot.llm.lora import resolve_lora  # noqa: E402
from bot.negotiation.llm_agent import PICKS  # noqa: E402
from bot.negotiation.narration import CHECKS, distinct_n, narration_findings  # noqa: E402
from bot.negotiation.prompts import SENTENCE_BUDGETS, money  # noqa: E402
from bot.negotiation.runner import run_negotiation  # noqa: E402
from bot.negotiation.turns import standing_price  # noqa: E402


class Shipped:
    """An agreemate scenario in the shape pick_dialogues returns (no human lines)."""

    def __init__(self, scenario):
        self.scenario, self.turns = scenario, ()


def pick_shipped(n: int, seed: int):
    scenarios = load_agreemate_scenarios()
    return [Shipped(s) for s in scenarios[:n]]


def pick_dialogues(cfg, n: int, seed: int):
    """``n`` test-split dialogues, seeded, of items kept for reading (never trained on, see
    bot.datasets.reading_item), none of whose items is one of the 30 shipped ones."""
    path = locate(cfg, "craigslist", "test")  # [data] craigslist_test, else the data cache
    shipped = {s.title.strip().lower() for s in load_agreemate_scenarios()}
    dialogues = [d for d in load_craigslist(path)
                 if d.scenario.title.strip().lower() not in shipped and reading_item(d.scenario.title)
                 and sum(1 for t in d.turns if t.utterance.strip()) >= 4]
    random.Random(seed).shuffle(dialogues)
    return dialogues[:n]


def checked_lora(ref: str) -> Path:
    """A variant's adapter, a path from the current directory as typed on the command line,
    checked (manifest, file sha256) before any game: a missing adapter must stop the bench,
    not turn a variant into fallback templates."""
    try:
        resolve_lora(Path(ref).absolute())
    except ModelError as exc:
        raise SystemExit(f"--variant lora={ref}: {exc}") from None
    return Path(ref).absolute()


def variant_config(cfg, spec: dict[str, str]):
    """The config with every model's lora and openings and every llm agent's candidates and pick
    overridden."""
    models = dict(cfg.models)
    if "openings" in spec:
        if spec["openings"] not in ("forced", "drawn"):
            raise SystemExit(f"openings={spec['openings']}: forced or drawn")
        models = {k: dataclasses.replace(m, forced_openings=spec["openings"] == "forced")
                  for k, m in models.items()}
    if "lora" in spec:
        lora = None if spec["lora"] in ("", "none") else str(checked_lora(spec["lora"]))
        models = {k: dataclasses.replace(m, lora=lora) for k, m in models.items()}
    agents = dict(cfg.agents)
    if "candidates" in spec:
        agents = {k: dataclasses.replace(a, candidates=int(spec["candidates"])) if a.kind == "llm" else a
                  for k, a in agents.items()}
    if "pick" in spec:
        if spec["pick"] not in PICKS:
            raise SystemExit(f"pick={spec['pick']}: one of {', '.join(PICKS)}")
        agents = {k: dataclasses.replace(a, pick=spec["pick"]) if a.kind == "llm" else a
                  for k, a in agents.items()}
    if "sentences" in spec:
        budget = None if spec["sentences"] in ("", "none") else int(spec["sentences"])
        if budget not in SENTENCE_BUDGETS:
            raise SystemExit(f"sentences={spec['sentences']}: 1 or none")
        agents = {k: dataclasses.replace(a, sentences=budget) if a.kind == "llm" else a
                  for k, a in agents.items()}
    if "floor" in spec:
        floor = None if spec["floor"] in ("", "none") else float(spec["floor"])
        if floor is not None and not 0 < floor < 1:
            raise SystemExit(f"floor={spec['floor']}: a chance in (0, 1), or none")
        agents = {k: dataclasses.replace(a, reader_floor=floor) if a.kind == "llm" else a
                  for k, a in agents.items()}
    if "rephrase" in spec:
        if spec["rephrase"] not in ("on", "off"):
            raise SystemExit(f"rephrase={spec['rephrase']}: on or off")
        agents = {k: dataclasses.replace(a, rephrase=spec["rephrase"] == "on") if a.kind == "llm" else a
                  for k, a in agents.items()}
    return dataclasses.replace(cfg, models=models, agents=agents)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    spec = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    unknown = set(spec) - {"lora", "candidates", "openings", "pick", "sentences", "rephrase", "floor"}
    if unknown:
        raise SystemExit(f"--variant {text}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(lora, candidates, openings, pick, sentences, rephrase, floor)")
    return name, spec


def previous_line(turns, i: int) -> str:
    for t in reversed(turns[:i]):
        if t.utterance.strip():
            return f"{t.role.value}: {t.utterance.strip()}"
    return "(first line)"


async def play(cfg, dialogues, buyer: str, seller: str, seed: int, log_path: Path | None = None) -> list[dict]:
    """Every turn of the negotiations, as rows (item, role, act, price, line, previous line);
    with ``log_path`` each negotiation's rows are appended there as soon as it ends."""
    rows = []
    factory = AgentFactory(cfg)
    try:
        for d in dialogues:
            sc = d.scenario
            b = factory.build(buyer, "buyer", seed=seed)
            s = factory.build(seller, "seller", seed=seed)
            started = time.perf_counter()
            record = await run_negotiation(sc, b, s, max_turns=cfg.negotiation.max_turns,
                                           first_mover=cfg.negotiation.first_mover)
            took = time.perf_counter() - started
            for i, t in enumerate(record.turns):
                rows.append({"scenario": sc.id, "item": sc.title, "category": sc.category,
                             "listing": sc.listing_price, "role": t.role.value, "act": t.act.value,
                             "price": t.price, "line": t.utterance, "previous": previous_line(record.turns, i),
                             "their_price": standing_price(record.turns[:i], t.role.other),
                             "my_price": standing_price(record.turns[:i], t.role),
                             "fallback": t.fallback, "repaired": t.repaired, "guard": t.guard,
                             "seconds": t.seconds,
                             "prompt_tokens_evaluated": t.prompt_tokens_evaluated,
                             "prompt_tokens": t.prompt_tokens,
                             "outcome": record.outcome.value, "negotiation_seconds": took,
                             "turns": len(record.turns), "index": i,
                             "metrics": {k: record.metrics.get(k) for k in (
                                 "agreed", "fairness", "reservation_violations",
                                 "text_price_mismatches")} if i == 0 else None})
            print(f"  {sc.title[:50]!r}: {record.outcome.value}, {len(record.turns)} turns, {took:.1f} s",
                  flush=True)
            if log_path is not None:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[-len(record.turns):])
    finally:
        await factory.aclose()
    return rows


def score_rows(rows: list[dict]) -> dict:
    model = [r for r in rows if not r["fallback"]]
    found = Counter()
    flagged = 0
    for r in model:
        f = narration_findings(r["line"], _act(r["act"]), _role(r["role"]), price=r["price"],
                               their_price=r.get("their_price"), my_price=r.get("my_price"),
                               listing=r.get("listing"),
                               category=r["category"] or "", title=r["item"])
        r["findings"] = [f"{x.check}: {x.detail}" for x in f]
        flagged += bool(f)
        found.update({x.check for x in f})
    lines = [r["line"] for r in model]
    firsts = [r for r in rows if r.get("metrics")]
    fair = [r["metrics"]["fairness"] for r in firsts if r["metrics"]["fairness"] is not None]
    evaluated = sum(r["prompt_tokens_evaluated"] or 0 for r in rows)
    final = 0
    for sc in {r["scenario"] for r in rows}:
        for role in ("buyer", "seller"):
            mine = [r for r in rows if r["scenario"] == sc and r["role"] == role and r["prompt_tokens"]]
            final += mine[-1]["prompt_tokens"] if mine else 0
    outcome = {"negotiations": len(firsts),
               "agreement": sum(bool(r["metrics"]["agreed"]) for r in firsts) / max(len(firsts), 1),
               "fairness": sum(fair) / len(fair) if fair else None,
               "reservation_violations": sum(r["metrics"]["reservation_violations"] or 0 for r in firsts),
               "text_price_mismatches": sum(r["metrics"]["text_price_mismatches"] or 0 for r in firsts),
               "prefix_reuse": evaluated / final if final else None}
    return {"turns": len(rows), **outcome, "model_lines": len(model),
            "template_share": sum(r["fallback"] for r in rows) / max(len(rows), 1),
            "rephrased_share": sum(bool(r.get("repaired")) for r in rows) / max(len(rows), 1),
            "flagged_share": flagged / max(len(model), 1),
            **{c: found[c] for c in CHECKS},
            "distinct_1": distinct_n(lines, 1), "distinct_2": distinct_n(lines, 2),
            "s_per_turn": sum(r["seconds"] for r in rows) / max(len(rows), 1)}


def _act(value):
    from bot.negotiation.turns import Act
    return Act.parse(value)


def _role(value):
    from bot.negotiation.turns import Role
    return Role.parse(value)


def human_rows(dialogues) -> list[dict]:
    rows = []
    for d in dialogues:
        spoken = [t for t in d.turns if t.utterance.strip()]
        for i, t in enumerate(spoken):
            prev = f"{spoken[i - 1].role.value}: {spoken[i - 1].utterance.strip()}" if i else "(first line)"
            rows.append({"scenario": d.scenario.id, "item": d.scenario.title, "listing": d.scenario.listing_price,
                         "role": t.role.value, "line": t.utterance.strip(), "previous": prev})
    return rows


def write_sample(out: Path, model_rows, template_rows, humans, per_kind: int, seed: int) -> None:
    rng = random.Random(seed)
    picked = []
    for kind, rows in (("model", model_rows), ("template", template_rows), ("human", humans)):
        rows = [r for r in rows if r["line"].strip()]
        rng.shuffle(rows)
        if len(rows) < per_kind:
            print(f"  note: only {len(rows)} {kind} lines for the sample (asked {per_kind})")
        picked += [(kind, r) for r in rows[:per_kind]]
    rng.shuffle(picked)
    write_sample_files(out, [({"kind": kind, "scenario": r["scenario"], "rephrased": bool(r.get("repaired"))},
                              {"item": r["item"], "listing": money(r["listing"]), "speaker": r["role"],
                               "previous": r["previous"], "line": r["line"]}) for kind, r in picked])


def write_sample_files(out: Path, entries: list[tuple[dict, dict]]) -> None:
    """The blind reading of shuffled (key entry, line) pairs: OUT/sample.jsonl and sample.md (item,
    listing, speaker, the line before, the line, an id) and, apart, OUT/key.json (id -> key entry)."""
    sample, key = [], {}
    for i, (entry, line) in enumerate(entries, 1):
        lid = f"L{i:03d}"
        key[lid] = entry
        sample.append({"id": lid, **{k: line[k] for k in ("item", "listing", "speaker", "previous", "line")}})
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in sample))
    md = ["# Blind reading: would a person haggling over this item write this line?", "",
          "For each line: sensible (yes/no: a person in this seat could have written it here) and "
          "natural (1 = clearly not a person ... 5 = reads exactly like a person). Answer as "
          'JSON lines {"id": "L001", "sensible": true, "natural": 4}.', ""]
    for s in sample:
        md += [f"## {s['id']}", f"- item: {s['item']} (listed at {s['listing']})",
               f"- speaker: {s['speaker']}", f"- previous line: {s['previous']}", f"- line: {s['line']}", ""]
    (out / "sample.md").write_text("\n".join(md))
    (out / "key.json").write_text(json.dumps(key, indent=1))
    print(f"  blind sample: {out / 'sample.md'} ({len(sample)} lines); key apart: {out / 'key.json'}")


def score_judged(key_path: Path, judged_path: Path) -> None:
    key = json.loads(key_path.read_text())
    by_kind: dict[str, list[dict]] = {}
    for line in judged_path.read_text().splitlines():
        if line.strip():
            j = json.loads(line)
            by_kind.setdefault(key[j["id"]]["kind"], []).append(j)
            if key[j["id"]].get("rephrased"):  # a second-round line (rephrase), counted as model too
                by_kind.setdefault("rephrased", []).append(j)
    print(f"{'kind':10s} {'lines':>5s} {'sensible':>9s} {'natural':>8s}")
    for kind in ("model", "rephrased", "template", "human"):
        js = by_kind.get(kind, [])
        if js:
            print(f"{kind:10s} {len(js):5d} {sum(bool(j['sensible']) for j in js) / len(js):9.0%} "
                  f"{sum(j['natural'] for j in js) / len(js):8.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None)
    ap.add_argument("--scenarios", type=int, default=12)
    ap.add_argument("--scenario-set", choices=("craigslist-test", "agreemate"), default="craigslist-test",
                    help="agreemate: the 30 shipped scenarios in order, for the outcome metrics "
                         "(no blind sample: those items are not unseen)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--buyer", default="buyer")
    ap.add_argument("--seller", default="seller")
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--out", default="runs/narration")
    ap.add_argument("--sample-from", default=None)
    ap.add_argument("--per-kind", type=int, default=75)
    ap.add_argument("--score", default=None, help="a judged JSONL to score against OUT/key.json")
    ap.add_argument("--rescore", action="append", default=[], metavar="NAME=FILE.jsonl",
                    help="score a variant's rows written by an earlier run (repeatable), beside "
                         "the variants run now")
    args = ap.parse_args()
    out = Path(args.out)
    if args.score:
        score_judged(out / "key.json", Path(args.score))
        return 0
    cfg = load_config(args.config)
    if args.scenario_set == "agreemate":
        if args.sample_from:
            raise SystemExit("--sample-from needs unseen items: use --scenario-set craigslist-test")
        dialogues = pick_shipped(args.scenarios, args.seed)
    else:
        dialogues = pick_dialogues(cfg, args.scenarios, args.seed)
    variants = [parse_variant(v) for v in args.variant] or [("config", {})]
    out.mkdir(parents=True, exist_ok=True)
    results, rows_by = {}, {}
    for item in args.rescore:
        name, _, path = item.partition("=")
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        for r in rows:
            r.setdefault("prompt_tokens", None)
            r.setdefault("metrics", None)
        results[name], rows_by[name] = score_rows(rows), rows
    if args.rescore and not args.variant:
        variants = []
    for name, spec in variants:
        print(f"== {name} {spec}", flush=True)
        partial = out / f"{name}.partial.jsonl"
        partial.unlink(missing_ok=True)
        rows = asyncio.run(play(variant_config(cfg, spec), dialogues, args.buyer, args.seller, args.seed,
                                log_path=partial))
        results[name] = score_rows(rows)
        rows_by[name] = rows
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    cols = ["turns", "agreement", "fairness", "reservation_violations", "text_price_mismatches",
            "prefix_reuse", "model_lines", "template_share", "rephrased_share", "flagged_share", *CHECKS,
            "distinct_1", "distinct_2", "s_per_turn"]
    print(f"\nscenarios: {len(dialogues)} {args.scenario_set} (seed {args.seed})")
    print("variant".ljust(18) + "".join(c[:12].rjust(13) for c in cols))
    for name, r in results.items():
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print(name.ljust(18) + "".join(c.rjust(13) for c in cells))
    (out / "checks.json").write_text(json.dumps(results, indent=1))
    if args.sample_from:
        rows = rows_by[args.sample_from]
        model_rows = [r for r in rows if not r["fallback"]]
        templates = [r for r in rows if r["fallback"]]
        print("== rule agents on the same scenarios (template lines)", flush=True)
        templates += asyncio.run(play(cfg, dialogues, "rule-buyer", "rule-seller", args.seed))
        write_sample(out, model_rows, templates, human_rows(dialogues), args.per_kind, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
