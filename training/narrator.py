"""Narrator examples: what a hybrid agent's model does at serving time, from people's words.

    haggle train narrator-data --split validation --out adapters/narrator/data

A hybrid agent (bot/negotiation/llm_agent.py) gets its move from the concession policy and asks
the model only for the words: the prompt is ``build_messages(..., hybrid=True)`` with the
policy's directive ("make a counter-offer of $150 ...") appended to the last user message, and
the reply is ``{"utterance": ...}`` constrained by ``prompts.narration_pattern``. A narrator
example is exactly that, built by the same functions from a CraigslistBargains dialogue: the
item, the role, the conversation so far, the act and price the person played (the dataset's
labels, else the core parser, as in training/data.py) as the directive, and the person's words
as the target. The base model never learned to narrate a move it was given; this teaches it.

Which of a side's turns are targets (the others stay as context with ``"train": false``):
    - the act is one the policy plays (POLICY_ACTS); an accept names the other side's standing
      offer, as the policy's accept does;
    - the words, with the turn's price written the way the bot writes prices (money(): "$1,200"),
      match the serving grammar of that move (narration_pattern): the price stated exactly once,
      no other number, no quotes or brackets, within the length the grammar allows.
One example per dialogue side: the hybrid layout is append-only, so the conversation up to our
k-th reply is the prompt serving would have sent at that turn.

The blind-reading scenarios of bench/narration_quality.py come from the test split's reading
items (bot.datasets.reading_item, about a third of its items); a narrator trains on the
validation split and on the test split's other items (``--split test``: unlabelled, so the core
parser reads the acts), so no item read blind is ever trained on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.datasets import Dialogue
from bot.negotiation.openers import (
    GREETINGS,
    OPENER_MIN_TARGETS,
    OPENERS_PER_MOVE,
    first_word,
    opener_root,
)
from bot.negotiation.prompts import PRICED_REPLY_ACTS, build_messages, money, narration_pattern
from bot.negotiation.turns import Act, Role, Turn, standing_price
from training.data import Report, resolve_dialogue

# The acts ConcessionPolicy.plan() plays (plus the dataset's formal offer, a priced proposal).
POLICY_ACTS = frozenset({Act.INIT_PRICE, Act.COUNTER_PRICE, Act.OFFER, Act.INSIST, Act.ACCEPT,
                         Act.INQUIRE, Act.INFORM, Act.QUIT, Act.REJECT})

# A number as people write a price: "$1,200", "1200", "1.2k", "150 dollars", "150 bucks".
_PRICE_TEXT = re.compile(r"\$\s?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?[kK]\b)?|\b\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?[kK]\b)?"
                         r"(?:\s?(?:dollars|bucks)\b)?")


def _value(text: str) -> float | None:
    raw = re.sub(r"(dollars|bucks)$", "", text.replace("$", "").replace(",", "").strip()).strip()
    scale = 1.0
    if raw[-1:] in ("k", "K"):
        raw, scale = raw[:-1].strip(), 1000.0
    try:
        return float(raw) * scale
    except ValueError:
        return None


def write_price(utterance: str, price: float | None) -> str:
    """The words with every mention of ``price`` written as money(price) ("150 bucks" -> "$150")."""
    if price is None:
        return utterance

    def sub(m: re.Match[str]) -> str:
        value = _value(m.group(0))
        if value is not None and abs(value - price) <= 0.005 * max(price, 1.0):
            return money(price)
        return m.group(0)

    return _PRICE_TEXT.sub(sub, utterance)


def clean_words(utterance: str) -> str:
    """One line, single spaces: how a reply reads."""
    return re.sub(r"\s+", " ", utterance).strip()


@dataclass
class NarratorReport:
    """What was built and what was left out (beside the examples)."""

    split: str
    roles: list[str]
    dialogues: int = 0
    targets: Counter = field(default_factory=Counter)    # act -> trained turns
    skipped: Counter = field(default_factory=Counter)    # why not a target
    examples: dict[str, int] = field(default_factory=dict)
    data: Report | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "roles": self.roles, "dialogues": self.dialogues,
                "examples": self.examples, "targets": dict(self.targets.most_common()),
                "trained_turns": sum(self.targets.values()),
                "not_targets": dict(self.skipped.most_common()),
                "act_source": dict(self.data.act_source) if self.data else {}}


def narration_target(turn: Turn, history: Sequence[Turn]) -> tuple[Turn | None, str | None]:
    """(the turn as the narrator would play it, None) or (None, why it is not a target)."""
    if not turn.utterance:
        return None, "formal action with no words"
    if turn.act not in POLICY_ACTS:
        return None, f"act {turn.act.value} (the policy never plays it)"
    price = turn.price
    if turn.act is Act.ACCEPT:
        price = standing_price(list(history), turn.role.other)
        if price is None:
            return None, "accept with no offer on the table"
    elif turn.act in PRICED_REPLY_ACTS and price is None:
        return None, "priced act without a price"
    words = clean_words(write_price(turn.utterance, price))
    if not re.fullmatch(narration_pattern(turn.act, price, turn.role).strip("^$"), words):
        return None, "words outside the serving grammar of the move"
    return replace(turn, price=price, utterance=words), None


def opener_table(dialogues: Iterable[Dialogue], *, top: int = OPENERS_PER_MOVE,
                 min_targets: int = OPENER_MIN_TARGETS) -> dict[str, tuple[str, ...]]:
    """bot/negotiation/openers.py's OPENERS: for each move ("seller counter-price"), the words
    people's narrator targets most often begin with, most frequent first (one per root: "That's"
    stands for "That"; greetings left out: they never rephrase a move mid-haggle). A move with
    fewer than ``min_targets`` targets takes the counts of both roles' targets for its act, and
    none when those are still fewer."""
    counts: dict[tuple[str, str], Counter] = {}
    for dialogue in dialogues:
        turns = resolve_dialogue(dialogue, Report(role="narrator", split="openers"))
        for i, turn in enumerate(turns):
            target, _ = narration_target(turn, turns[:i])
            word = first_word(target.utterance) if target is not None else None
            if word is not None and opener_root(word) not in GREETINGS:
                counts.setdefault((turn.role.value, target.act.value), Counter())[word] += 1
    table: dict[str, tuple[str, ...]] = {}
    for role, act in sorted(counts):
        seen = counts[(role, act)]
        if sum(seen.values()) < min_targets:
            seen = sum((c for (_, a), c in counts.items() if a == act), Counter())
            if sum(seen.values()) < min_targets:
                continue
        words: list[str] = []
        roots: set[str] = set()
        for word, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])):
            if opener_root(word) not in roots:
                roots.add(opener_root(word))
                words.append(word)
        table[f"{role} {act}"] = tuple(words[:top])
    return table


def narrator_example(dialogue_id: str, scenario, turns: Sequence[Turn], role: Role, *,
                     max_turns: int, report: NarratorReport) -> dict[str, Any] | None:
    turns = list(turns[:max_turns])
    played: list[Turn] = []
    flags: list[bool] = []
    for i, turn in enumerate(turns):
        if turn.role is not role:
            played.append(turn)
            continue
        target, why = narration_target(turn, turns[:i])
        if target is None:
            report.skipped[why] += 1
            # context: an accept still names the offer it took, as serving renders it
            if turn.act is Act.ACCEPT and turn.price is None:
                turn = replace(turn, price=standing_price(turns[:i], role.other))
            played.append(turn)
            flags.append(False)
        else:
            report.targets[f"{role.value} {target.act.value}"] += 1
            played.append(target)
            flags.append(True)
    if not any(flags):
        return None
    own_index = [i for i, t in enumerate(played) if t.role is role]
    last = max(i for i, ok in zip(own_index, flags, strict=False) if ok)
    messages = build_messages(scenario, role, played[: last + 1], max_turns=max_turns, hybrid=True)
    messages = messages[:-1]  # the "your turn again" prompt after our last reply
    own = iter(flags)
    for msg in messages:
        if msg["role"] == "assistant" and not next(own):
            msg["train"] = False
    return {"id": dialogue_id, "source": "craigslist", "role": role.value, "messages": messages}


def build_narrator_examples(dialogues: Iterable[Dialogue], *, split: str,
                            roles: Sequence[Role] = (Role.BUYER, Role.SELLER),
                            max_turns: int = 15) -> tuple[list[dict[str, Any]], NarratorReport]:
    """Every narrator example of ``roles`` from ``dialogues`` (both sides of a dialogue share
    its id, so a by-id split keeps them together)."""
    data_report = Report(role="narrator", split=split)
    report = NarratorReport(split=split, roles=[r.value for r in roles], data=data_report)
    out = []
    for dialogue in dialogues:
        report.dialogues += 1
        turns = resolve_dialogue(dialogue, data_report)
        for role in roles:
            example = narrator_example(dialogue.scenario.id, dialogue.scenario, turns, role,
                                       max_turns=max_turns, report=report)
            if example is not None:
                out.append(example)
    return out, report


def write_narrator_data(dialogues: Sequence[Dialogue], out_dir, *, split: str,
                        eval_fraction: float = 0.05, seed: int = 0,
                        max_turns: int = 15) -> dict[str, Any]:
    """Build the narrator examples, split them by dialogue and write narrator.jsonl,
    narrator.eval.jsonl and narrator.report.json under ``out_dir``; returns the report."""
    from pathlib import Path

    from training.data import eval_path_for, report_path_for, split_examples, write_jsonl
    from training.manifest import sha256_file, write_json_atomic

    examples, report = build_narrator_examples(dialogues, split=split, max_turns=max_turns)
    train, held = split_examples(examples, eval_fraction, seed)
    train_path = Path(out_dir) / "narrator.jsonl"
    write_jsonl(train_path, train)
    write_jsonl(eval_path_for(train_path), held)
    report.examples = {"train": len(train), "eval": len(held)}
    out = report.to_dict()
    out["eval_dialogues"] = sorted({e["id"] for e in held})
    out["files"] = {p.name: sha256_file(p) for p in (train_path, eval_path_for(train_path))}
    write_json_atomic(report_path_for(train_path), out)
    return out


def stage_narrator_data(cfg, split: str, out_path, *, data: str | None = None,
                        max_turns: int | None = None, eval_fraction: float = 0.05,
                        seed: int = 0) -> dict[str, Any]:
    """`haggle train data --role narrator`: the examples of ``split`` written beside ``out_path``
    (narrator.jsonl, .eval.jsonl, .report.json; the folder is out_path's)."""
    from pathlib import Path

    from bot.datasets import load_craigslist, reading_item
    from bot.errors import DataError
    from training.pipeline import craigslist_ref

    dialogues = load_craigslist(craigslist_ref(cfg, split, data))
    if split == "test":  # unlabelled: the core parser reads its acts; reading items left out
        dialogues = [d for d in dialogues if not reading_item(d.scenario.title)]
        if not dialogues:
            raise DataError("every item of the test split is kept for blind reading "
                            "(bot.datasets.reading_item); train on the validation split")
    out_dir = Path(out_path).parent
    return write_narrator_data(dialogues, out_dir, split=split, eval_fraction=eval_fraction, seed=seed,
                               max_turns=max_turns or cfg.negotiation.max_turns)
