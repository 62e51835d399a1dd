"""How well the rule-based parser reproduces CraigslistBargains' act and price labels.

Run from the repository root:

    .venv/bin/python bench/parser_accuracy.py                  # the validation split
    .venv/bin/python bench/parser_accuracy.py PATH.json        # another labelled file
    .venv/bin/python bench/parser_accuracy.py --errors counter-price:unknown   # show examples

The gold labels are the dataset's ``dialogue_acts`` (one intent and one price per turn, price
-1.0 meaning "no price"). They were made by CoCoA's own rule-based parser with dialogue state,
not by people, so they follow conventions (a textual "Deal." is ``agree``; 144 validation
dialogues are unlabelled, every intent ``""``, which counts as gold ``unknown``) that no parser
can match perfectly; the report therefore also shows the numbers restricted to labelled
dialogues.

The parser sees what the bot would see: the utterance, the speaker's role, the listing price,
whether a price was named earlier and (in the "with history" mode, how the runner calls it)
the turns so far. All of that comes from the parser's *own* earlier output, never from the
gold labels, so the numbers are end-to-end. Turns with an empty utterance (pure
offer/accept/reject/quit actions) are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.errors import DataError, TurnError
from bot.negotiation.parser import parse_utterance
from bot.negotiation.turns import Act, Role, Turn


@dataclass(frozen=True)
class Scored:
    """One utterance turn: gold and predicted act and price."""

    text: str
    role: Role
    gold_act: Act
    gold_price: float | None
    act: Act
    price: float | None
    labelled: bool  # False when the whole dialogue carries no labels ("" everywhere)


def load_dialogues(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path} not found: pass the path of a CraigslistBargains JSON-lines file")
    dialogues = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                dialogues.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not JSON ({e}); expected one dialogue per line") from e
    return dialogues


def score_dialogue(d: dict, *, use_history: bool = True) -> list[Scored]:
    """Parse every utterance of one dialogue in order, as the bot would see them.

    With ``use_history`` the parser also gets the turns so far (its own parses of them), as
    the runner gives it; without, only ``has_prices``.
    """
    roles = [Role.parse(r) for r in d["agent_info"]["Role"]]
    listing = float(d["items"]["Price"][0])
    intents = d["dialogue_acts"]["intent"]
    labelled = any(i for i, u in zip(intents, d["utterance"], strict=False) if u.strip())
    has_prices = False
    history: list[Turn] = []
    out = []
    for text, agent, intent, gold_price in zip(
        d["utterance"], d["agent_turn"], intents, d["dialogue_acts"]["price"], strict=False
    ):
        if not text.strip():
            continue
        role = roles[agent]
        parsed = parse_utterance(text, role=role, listing_price=listing, has_prices=has_prices,
                                 history=history if use_history else None)
        has_prices = has_prices or parsed.price is not None
        history.append(Turn(role=role, act=parsed.act, price=parsed.price, utterance=text))
        out.append(Scored(
            text=text, role=role, gold_act=Act.parse(intent),
            gold_price=None if gold_price == -1.0 else float(gold_price),
            act=parsed.act, price=parsed.price, labelled=labelled,
        ))
    return out


def score_file(path: Path, *, use_history: bool = True) -> list[Scored]:
    rows = []
    for number, dialogue in enumerate(load_dialogues(path), 1):
        try:
            rows.extend(score_dialogue(dialogue, use_history=use_history))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise DataError(f"{path}: dialogue {number} is not in the CraigslistBargains "
                            f"format ({type(e).__name__}: {e})") from None
    return rows


def _same_price(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6


@dataclass(frozen=True)
class Summary:
    turns: int
    act_accuracy: float
    price_accuracy: float     # exact match, "no price" counting as a value
    priced_found: float       # gold has a price: we found exactly it
    unpriced_clean: float     # gold has no price: we found none
    priced_turns: int


def summarize(rows: list[Scored]) -> Summary:
    n = len(rows)
    if n == 0:
        raise DataError("no turns with an utterance to score")
    priced = [r for r in rows if r.gold_price is not None]
    unpriced = [r for r in rows if r.gold_price is None]
    return Summary(
        turns=n,
        act_accuracy=sum(r.act is r.gold_act for r in rows) / n,
        price_accuracy=sum(_same_price(r.price, r.gold_price) for r in rows) / n,
        priced_found=sum(_same_price(r.price, r.gold_price) for r in priced) / max(len(priced), 1),
        unpriced_clean=sum(r.price is None for r in unpriced) / max(len(unpriced), 1),
        priced_turns=len(priced),
    )


def _print_summary(title: str, rows: list[Scored]) -> None:
    s = summarize(rows)
    print(f"== {title}: {s.turns} turns")
    print(f"act accuracy          {s.act_accuracy:.3f}")
    print(f"price exact-match     {s.price_accuracy:.3f}  (no price counts as a value)")
    print(f"  gold-priced turns   {s.priced_found:.3f}  found exactly the gold price "
          f"({s.priced_turns} turns)")
    print(f"  gold-unpriced turns {s.unpriced_clean:.3f}  found no price "
          f"({s.turns - s.priced_turns} turns)")


def report(rows: list[Scored], plain: list[Scored], *, top: int = 15) -> None:
    """Print the headline numbers, both modes, per-act recall/precision and top confusions."""
    labelled = [r for r in rows if r.labelled]
    _print_summary("with history, all turns (unlabelled dialogues count as gold 'unknown')",
                   rows)
    _print_summary("with history, labelled dialogues only", labelled)
    _print_summary("without history (has_prices only), all turns", plain)
    _print_summary("without history, labelled dialogues only", [r for r in plain if r.labelled])
    print("\n== per gold act (with history, labelled dialogues): recall, precision, count")
    gold_counts = Counter(r.gold_act for r in labelled)
    pred_counts = Counter(r.act for r in labelled)
    hits = Counter(r.gold_act for r in labelled if r.act is r.gold_act)
    for act in sorted(set(gold_counts) | set(pred_counts), key=lambda a: -gold_counts[a]):
        recall = f"{hits[act] / gold_counts[act]:.3f}" if gold_counts[act] else "  -  "
        precision = f"{hits[act] / pred_counts[act]:.3f}" if pred_counts[act] else "  -  "
        print(f"  {act.value:14s} recall {recall}  precision {precision}  "
              f"gold {gold_counts[act]:4d}  predicted {pred_counts[act]:4d}")
    print("\n== most common errors (with history, labelled dialogues): gold -> predicted")
    errors = Counter((r.gold_act, r.act) for r in labelled if r.act is not r.gold_act)
    for (gold, pred), count in errors.most_common(top):
        print(f"  {count:4d}  {gold.value} -> {pred.value}")


def show_errors(rows: list[Scored], spec: str, limit: int) -> None:
    """Print examples for ``gold:predicted`` acts, or ``price`` for price mismatches."""
    if spec == "price":
        bad = [r for r in rows if r.labelled and not _same_price(r.price, r.gold_price)]
    else:
        gold, _, pred = spec.partition(":")
        bad = [r for r in rows if r.labelled and r.gold_act is Act.parse(gold)
               and (not pred or r.act is Act.parse(pred))]
    for r in bad[:limit]:
        print(f"[{r.role.value} gold={r.gold_act.value}/{r.gold_price} "
              f"got={r.act.value}/{r.price}] {r.text!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path,
                    help="CraigslistBargains JSON-lines file with dialogue_acts labels (default: "
                         "the validation split of [data] or `haggle data fetch craigslist`)")
    ap.add_argument("--errors", metavar="GOLD:PRED|price",
                    help="print example mistakes for one confusion (or price mismatches)")
    ap.add_argument("--limit", type=int, default=40, help="how many examples --errors prints")
    args = ap.parse_args(argv)
    try:
        if args.path is None:
            from bot.config import load_config
            from bot.data_sources import locate

            args.path = Path(locate(load_config(), "craigslist", "validation"))
        rows = score_file(args.path)
        plain = score_file(args.path, use_history=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report(rows, plain)
    if args.errors:
        print()
        try:
            show_errors(rows, args.errors, args.limit)
        except TurnError as e:
            print(f"error: --errors {args.errors}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
