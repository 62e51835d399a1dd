"""Role-specific chat examples from negotiation dialogues: the `haggle train data` stage.

    haggle train data --role seller --split validation        # -> adapters/seller/data/

Every example is one dialogue seen from one side, built with bot/negotiation/prompts.py exactly
as the serving agent builds its prompt (policy "llm", personality "fair", no chain of thought):
the system prompt, the other side's turns as stamped user messages, and our own turns as the
reply JSON of reply_schema(), which are the training targets. One example per dialogue rather
than per turn: the prompt layout is append-only, so the conversation up to our k-th reply is the
very prompt serving would have sent at that turn, and one pass trains every reply of the side.

Sources
    CraigslistBargains (buyer, seller, generalist): each turn's act and price come from the
    dataset's labels where it has a usable one, else from the core parser
    (bot/negotiation/parser.py): an ``unknown`` or empty label, or a priced act without a price,
    is not usable. Deal or No Deal (generalist only): multi-issue item division with its own
    system prompt (prompts.deal_system_prompt); replies carry ``"price": null``.
    Buyer = buyer turns, seller = seller turns, generalist = both sides plus Deal or No Deal.

Formal action turns (CraigslistBargains' offer/accept/reject/quit buttons, an empty utterance):
    - right after a turn of the same speaker they are MERGED into it: that turn keeps its words
      and takes the formal act and price ("ok, 243 works" + offer $243 -> an offer of $243);
    - otherwise they stay in the dialogue as context (the other side reacts to them) but are
      never a target: the reply grammar needs words, and a served model must not learn to
      send none; an unlabelled one (no act, no price in the export) is dropped.

Which of our turns are targets. The others stay in the conversation as context, marked
``"train": false`` (no loss; see training/examples.py). A turn is not a target when it has no
words, its act is unknown to both label and parser (the reply grammar has no "unknown"), its
words are longer than the grammar allows, it accepts with no offer on the table, or its words
state a price other than its own (or a standing offer), which the serving agent would re-ask.
Replies follow reply_schema(): only init-price/counter-price/offer/insist carry a price. Turns
past the serving turn cap (``max_turns``) are cut: serving never gets there. A dialogue with
no target turn of the side gives no example. Every decision is counted in the report.

The train/eval split is by dialogue (both sides of a dialogue, and both lines of a Deal or No
Deal dialogue, land on the same side), a pure function of the dialogue's content and the seed.

Torch-free: token lengths are measured by the caller with the base model's tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.datasets import Dialogue
from bot.errors import DataError
from bot.negotiation.guard import utterance_problem
from bot.negotiation.parser import parse_utterance
from bot.negotiation.prompts import (
    DEAL_ACTS,
    MAX_UTTERANCE_CHARS,
    PRICED_REPLY_ACTS,
    DealTurn,
    build_deal_messages,
    build_messages,
)
from bot.negotiation.turns import Act, Role, Turn, standing_price

ROLES = ("buyer", "seller", "generalist")
SPLITS = ("train", "validation", "test")
# Deal or No Deal file per split (the catalogue's deal-or-no-deal files, bot/data/datasets.json).
DEAL_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
FORMAL_ACTS = frozenset({Act.OFFER, Act.ACCEPT, Act.REJECT, Act.QUIT})


@dataclass
class Report:
    """What was built and what was left out, and why (written beside the examples)."""

    role: str
    split: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    dialogues: Counter = field(default_factory=Counter)  # used / without a target turn
    turns: Counter = field(default_factory=Counter)  # target-side turns: trained / why not
    formal: Counter = field(default_factory=Counter)  # formal action turns: merged / context / dropped
    act_source: Counter = field(default_factory=Counter)  # label / parser
    trained_acts: Counter = field(default_factory=Counter)
    examples: dict[str, int] = field(default_factory=dict)  # train / eval
    tokens: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "split": self.split, "sources": self.sources,
                "examples": self.examples, "dialogues": dict(self.dialogues),
                "turns": dict(self.turns), "formal_turns": dict(self.formal),
                "act_source": dict(self.act_source),
                "trained_acts": dict(self.trained_acts.most_common()), "tokens": self.tokens}


# ------------------------------------------------------------------------- CraigslistBargains


def _usable_label(act: Act | None, price: float | None) -> bool:
    if act is None or act is Act.UNKNOWN:
        return False
    return act not in PRICED_REPLY_ACTS or price is not None


def _schema_price(act: Act, price: float | None) -> float | None:
    """reply_schema(): only the priced acts carry a price (an accept's is filled in by the runner)."""
    return price if act in PRICED_REPLY_ACTS else None


def resolve_dialogue(dialogue: Dialogue, report: Report) -> list[Turn]:
    """The dialogue as Turns: acts and prices from labels or the parser, formal turns merged."""
    scenario = dialogue.scenario
    turns: list[Turn] = []
    for dt in dialogue.turns:
        text = dt.utterance.strip()
        if not text:
            if dt.act not in FORMAL_ACTS or (dt.act is Act.OFFER and dt.price is None):
                report.formal["dropped: no act or price in the data"] += 1
                continue
            price = _schema_price(dt.act, dt.price)
            prev = turns[-1] if turns else None
            if prev is not None and prev.role is dt.role and prev.utterance:
                turns[-1] = Turn(dt.role, dt.act, price, prev.utterance)
                report.formal["merged into the same speaker's turn before it"] += 1
            else:
                turns.append(Turn(dt.role, dt.act, price, ""))
                report.formal["kept as context (no words of its own)"] += 1
            continue
        if _usable_label(dt.act, dt.price):
            act, price = dt.act, dt.price
            report.act_source["label"] += 1
        else:
            parsed = parse_utterance(text, role=dt.role, listing_price=scenario.listing_price,
                                     has_prices=any(t.price is not None for t in turns),
                                     history=turns)
            act, price = parsed.act, parsed.price
            report.act_source["parser"] += 1
        turns.append(Turn(dt.role, act, _schema_price(act, price), text))
    return turns


def target_problem(turn: Turn, history: Sequence[Turn]) -> str | None:
    """Why ``turn`` must not be a training target (None: it is a good one)."""
    if not turn.utterance:
        return "formal action with no words"
    if turn.act is Act.UNKNOWN:
        return "act unknown to label and parser"
    if len(turn.utterance) > MAX_UTTERANCE_CHARS:
        return f"utterance over {MAX_UTTERANCE_CHARS} characters"
    theirs = standing_price(list(history), turn.role.other)
    if turn.act is Act.ACCEPT and theirs is None:
        return "accept with no offer on the table"
    mine = standing_price(list(history), turn.role)
    if utterance_problem(turn, [p for p in (theirs, mine) if p is not None]):
        return "text states a price the turn does not carry"
    return None


def craigslist_example(dialogue_id: str, scenario, turns: Sequence[Turn], role: Role, *,
                       max_turns: int, report: Report, source: str) -> dict[str, Any] | None:
    """One side's example of a resolved dialogue, or None when no turn of that side is a target."""
    turns = list(turns[:max_turns])
    own: list[tuple[int, bool]] = []  # (index, is a target) of each of our turns
    for i, turn in enumerate(turns):
        if turn.role is not role:
            continue
        problem = target_problem(turn, turns[:i])
        own.append((i, problem is None))
        if problem is None:
            report.turns["trained"] += 1
            report.trained_acts[turn.act.value] += 1
        else:
            report.turns[f"context only: {problem}"] += 1
    targets = [i for i, ok in own if ok]
    if not targets:
        report.dialogues[f"no {role.value} turn to train on"] += 1
        return None
    # The conversation up to our last target reply; what follows it teaches nothing.
    messages = build_messages(scenario, role, turns[: targets[-1] + 1], max_turns=max_turns)
    messages = messages[:-1]  # the "your turn again" prompt after our last reply
    flags = iter([ok for _, ok in own])
    for msg in messages:
        if msg["role"] == "assistant" and not next(flags):
            msg["train"] = False
    report.dialogues[f"used ({role.value} side)"] += 1
    return {"id": dialogue_id, "source": source, "role": role.value, "messages": messages}


def craigslist_examples(dialogues: Iterable[Dialogue], roles: Sequence[Role], *, max_turns: int,
                        report: Report, source: str) -> list[dict[str, Any]]:
    out = []
    for dialogue in dialogues:
        turns = resolve_dialogue(dialogue, report)
        if len(turns) > max_turns:
            report.dialogues[f"cut at the {max_turns}-turn cap"] += 1
            report.turns["cut: past the turn cap"] += sum(1 for t in turns[max_turns:]
                                                          if t.role in roles)
        for role in roles:
            example = craigslist_example(dialogue.scenario.id, dialogue.scenario, turns, role,
                                         max_turns=max_turns, report=report, source=source)
            if example is not None:
                out.append(example)
    return out


# ------------------------------------------------------------------------- Deal or No Deal

_DEAL_LINE = re.compile(r"<input>(?P<input>[\d ]+)</input>\s*<dialogue>(?P<dialogue>.*)"
                        r"</dialogue>\s*<output>(?P<output>.*)</output>")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")


@dataclass(frozen=True)
class DealDialogue:
    """One line of a Deal or No Deal file: a dialogue seen by one of its two agents."""

    line: int
    counts: tuple[int, int, int]
    values: tuple[int, int, int]
    turns: tuple[tuple[bool, str], ...]  # (we said it, text); "<selection>" ends it
    agreed: bool

    @property
    def key(self) -> str:
        """The same for both agents' lines of one dialogue (counts and the words in order)."""
        text = "\x1f".join([" ".join(map(str, self.counts)), *(t for _, t in self.turns)])
        return "dnd-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def detokenize(text: str) -> str:
    """The corpus is tokenized ("i can't do that . ok ?"): no space before punctuation."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def read_deal_file(path: str | Path) -> tuple[list[DealDialogue], list[tuple[int, str]]]:
    """The dialogues of a Deal or No Deal file, and the lines that could not be read (why)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; get Deal or No Deal with `haggle data fetch "
                        "deal-or-no-deal`, or set [data] deal_or_no_deal to its folder")
    dialogues, bad = [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            m = _DEAL_LINE.search(line)
            numbers = m.group("input").split() if m else []
            if m is None or len(numbers) != 6:
                bad.append((lineno, "not <input> c0 v0 c1 v1 c2 v2 </input> <dialogue> ... </dialogue>"))
                continue
            turns = []
            for part in m.group("dialogue").split("<eos>"):
                part = part.strip()
                speaker, _, said = part.partition(":")
                if speaker not in ("YOU", "THEM"):
                    if part:
                        bad.append((lineno, f"a turn without YOU:/THEM: ({part[:40]!r})"))
                    continue
                turns.append((speaker == "YOU", said.strip()))
            nums = [int(x) for x in numbers]
            dialogues.append(DealDialogue(
                line=lineno, counts=(nums[0], nums[2], nums[4]), values=(nums[1], nums[3], nums[5]),
                turns=tuple(turns), agreed="item0=" in m.group("output")))
    return dialogues, bad


def deal_act(text: str) -> Act:
    """The act of an item-division message. The core parser reads the words; there are no prices
    here, and its "unknown" (in this corpus nearly always a proposed split: "i need the hats and
    the ball") is an inform, since the act set has no act for a proposal without a price."""
    act = parse_utterance(text).act
    return act if act in DEAL_ACTS else Act.INFORM


def deal_example(dialogue: DealDialogue, *, max_turns: int, report: Report,
                 source: str) -> dict[str, Any] | None:
    turns: list[DealTurn] = []
    for mine, said in dialogue.turns:
        if said == "<selection>" or not said:
            report.formal["dropped: Deal or No Deal <selection> (no words)"] += 1
            continue
        text = detokenize(said)
        turns.append(DealTurn(mine=mine, act=deal_act(text), utterance=text))
    if len(turns) > max_turns:
        report.dialogues[f"cut at the {max_turns}-turn cap"] += 1
        report.turns["cut: past the turn cap"] += sum(1 for t in turns[max_turns:] if t.mine)
        turns = turns[:max_turns]
    flags = []
    for turn in turns:
        if not turn.mine:
            continue
        ok = len(turn.utterance) <= MAX_UTTERANCE_CHARS
        flags.append(ok)
        if ok:
            report.turns["trained"] += 1
            report.trained_acts[f"deal {turn.act.value}"] += 1
        else:
            report.turns[f"context only: utterance over {MAX_UTTERANCE_CHARS} characters"] += 1
    if not any(flags):
        report.dialogues["no own Deal or No Deal turn to train on"] += 1
        return None
    own_index = [i for i, t in enumerate(turns) if t.mine]
    last = max(i for i, ok in zip(own_index, flags, strict=False) if ok)
    messages = build_deal_messages(dialogue.counts, dialogue.values, turns[: last + 1],
                                   max_turns=max_turns)[:-1]
    own = iter(flags)
    for msg in messages:
        if msg["role"] == "assistant" and not next(own):
            msg["train"] = False
    report.dialogues["used (Deal or No Deal)"] += 1
    return {"id": dialogue.key, "source": source, "role": "generalist", "messages": messages}


# ------------------------------------------------------------------------- split and write


def in_eval(dialogue_id: str, fraction: float, seed: int) -> bool:
    """Whether a dialogue is held out: a hash of its id and the seed, so stable across runs,
    machines and file order."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{dialogue_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_examples(examples: Sequence[dict[str, Any]], fraction: float,
                   seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = [e for e in examples if not in_eval(e["id"], fraction, seed)]
    held = [e for e in examples if in_eval(e["id"], fraction, seed)]
    return train, held


def eval_path_for(train_path: str | Path) -> Path:
    """Where the held-out examples of ``train_path`` go: NAME.jsonl -> NAME.eval.jsonl."""
    path = Path(train_path)
    return path.with_name(f"{path.name.removesuffix('.jsonl')}.eval.jsonl")


def report_path_for(train_path: str | Path) -> Path:
    path = Path(train_path)
    return path.with_name(f"{path.name.removesuffix('.jsonl')}.report.json")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write JSON lines through a temp file and a rename (no half-written file under the name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def token_stats(lengths: Sequence[int], max_seq_len: int) -> dict[str, Any]:
    """Summary of per-example token counts, and how many the fit's max_seq_len will truncate."""
    ordered = sorted(lengths)
    return {"examples": len(ordered), "min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1],
            "total": sum(ordered), "max_seq_len": max_seq_len,
            "over_max_seq_len": sum(1 for n in ordered if n > max_seq_len)}


def build_examples(role: str, split: str, *, craigslist: Sequence[Dialogue], craigslist_source: str,
                   deal: Sequence[DealDialogue] = (), deal_source: str = "", max_turns: int = 15,
                   report: Report | None = None) -> tuple[list[dict[str, Any]], Report]:
    """Every example of ``role`` from the given dialogues; raises DataError when there are none."""
    if role not in ROLES:
        raise DataError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    report = report or Report(role=role, split=split)
    roles = [Role.BUYER, Role.SELLER] if role == "generalist" else [Role(role)]
    examples = craigslist_examples(craigslist, roles, max_turns=max_turns, report=report,
                                   source=craigslist_source)
    if role == "generalist":
        for dialogue in deal:
            example = deal_example(dialogue, max_turns=max_turns, report=report, source=deal_source)
            if example is not None:
                examples.append(example)
    if not examples:
        raise DataError(f"no {role} example could be built from {craigslist_source}: no dialogue "
                        f"has a {role} turn to train on (see the report's reasons)")
    return examples, report


__all__ = ["DEAL_FILES", "ROLES", "SPLITS", "DealDialogue", "Report", "build_examples",
           "eval_path_for", "in_eval", "read_deal_file", "report_path_for", "resolve_dialogue",
           "split_examples", "target_problem", "token_stats", "write_jsonl"]
