"""Dataset readers: CraigslistBargains dialogues (AgreeMate's published runs: bot/agreemate.py).

Edge module (reads files, resolves ``hf://`` references through ``bot.hub``); the parsed
results are the pure core's types (``Scenario``, ``Role``, ``Act``).

CraigslistBargains (He et al. 2018)
    ``load_craigslist(ref)`` reads the Hugging Face form of the dataset: JSON lines as written
    by ``datasets``' ``to_json`` (what ``haggle data fetch craigslist`` downloads, see
    bot/data_sources.py), the same records as Parquet (needs ``pyarrow``: the [dev] extra has
    it, the runtime does not), or the original CoCoA ``parsed.json`` (a JSON array of
    ``{"scenario", "events"}``) that the Hub loader converts. ``ref`` is a local path or
    ``hf://datasets/OWNER/REPO/FILE``.

    The Hub dataset ``stanfordnlp/craigslist_bargains`` holds no data file, only a loading
    script (``craigslist_bargains.py``, plus README.md and .gitattributes) that downloads CoCoA
    ``parsed.json`` bundles from CodaLab (train: bundle 0xd34bbbc5fb3b4fccbd19e10756ca8dd7,
    validation: 0x15c4160b43d44ee3a8386cca98da138c; test: 0x54d325bbcfb2463583995725ed8ca42b),
    and ``datasets`` 4 no longer runs loading scripts. So a split is had as the JSON-lines
    export ``haggle data fetch`` gets (pinned in bot/data/datasets.json), as that
    ``parsed.json`` (pass its local path), or as a JSON-lines/Parquet export in some Hub
    dataset repository, e.g. ``load_craigslist("hf://datasets/OWNER/REPO/train.json")``.

    Scenario ids are ``cb-`` + the first 12 hex digits of the SHA-1 of the title, listing price,
    both targets and every utterance: stable across file formats and line order, unlike a line
    number, and unique per dialogue, unlike the listing's image (one listing is negotiated in
    many dialogues). A later identical dialogue in the same file gets ``-L<line>`` appended.

    Prices in the dataset are float32 (the JSON export shows 7.9000000954); they are read back
    as the shortest decimal that is the same float32 (7.9).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot import hub
from bot.errors import DataError, HaggleError
from bot.negotiation.scenario import (
    DEFAULT_BUYER_CEILING_FRACTION,
    DEFAULT_SELLER_BOTTOM_FRACTION,
    Scenario,
)
from bot.negotiation.turns import Act, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A record or row that was not read, where it is (1-based line) and why."""

    line: int
    reason: str


# =========================================================================== CraigslistBargains


@dataclass(frozen=True)
class DialogueTurn:
    """One turn of a dataset dialogue; ``act`` is None where the data has no label."""

    role: Role
    act: Act | None
    price: float | None
    utterance: str


@dataclass(frozen=True)
class Dialogue:
    scenario: Scenario
    turns: tuple[DialogueTurn, ...]
    line: int  # 1-based line (JSON lines), row (Parquet) or array element (CoCoA JSON)

    @property
    def labelled(self) -> bool:
        """Whether the dialogue carries act labels (the test split has none)."""
        return any(t.act is not None for t in self.turns)


@dataclass(frozen=True)
class CraigslistFile:
    path: Path
    dialogues: list[Dialogue]
    skipped: list[Skipped]


def _float32(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``value`` (7.9000000954 -> 7.9)."""
    target = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == target:
            return candidate
    return target


def _cb_price(value: Any) -> float | None:
    """A CraigslistBargains price: -1 (or any non-positive value) means none."""
    if value is None or value == "":
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        return None
    return _float32(value)


def _from_cocoa(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one CoCoA ``parsed.json`` dialogue to the Hugging Face record layout.

    Mirrors the Hub loading script: list-valued item fields are joined with ",", missing item
    fields and metadata get the script's defaults (price -1, intent ""), and an event whose
    data is not text (an offer, accept, reject or quit) has an empty utterance.
    """
    kbs = entry["scenario"]["kbs"]
    personal = [kb["personal"] for kb in kbs]
    items = []
    for kb in kbs:
        item = {
            k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in kb["item"].items()
        }
        defaults = {"Category": "", "Images": "", "Price": -1.0, "Description": "", "Title": ""}
        items.append({k: item.get(k) or d for k, d in defaults.items()})
    events = entry["events"]
    metadata = [e.get("metadata") or {} for e in events]
    return {
        "agent_info": {
            "Bottomline": [str(p.get("Bottomline")) for p in personal],
            "Role": [p.get("Role") for p in personal],
            "Target": [p.get("Target") for p in personal],
        },
        "agent_turn": [e.get("agent") if isinstance(e.get("agent"), int) else -1 for e in events],
        "dialogue_acts": {
            "intent": [m.get("intent") or "" for m in metadata],
            "price": [m.get("price") or -1.0 for m in metadata],
        },
        "utterance": [e.get("data") if isinstance(e.get("data"), str) else "" for e in events],
        "items": {
            k: [it[k] for it in items]
            for k in ("Category", "Images", "Price", "Description", "Title")
        },
    }


def _read_cb_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, record or the exception that made it unreadable) from any supported form."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                f"{path} is Parquet, which needs pyarrow: pip install pyarrow"
            ) from None
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises its own family of errors on a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        yield from enumerate(rows, start=1)
        return
    with path.open(encoding="utf-8") as fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        if head.startswith("["):  # a JSON array: CoCoA parsed.json (or a non-lines export)
            try:
                entries = json.load(fh)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}: starts like a JSON array but is not valid JSON ({exc})"
                ) from exc
            for i, entry in enumerate(entries, start=1):
                if isinstance(entry, Mapping) and "events" in entry and "scenario" in entry:
                    try:
                        entry = _from_cocoa(entry)
                    except (KeyError, TypeError, AttributeError) as exc:
                        entry = DataError(f"malformed CoCoA dialogue: {exc!r}")
                yield i, entry
            return
        for i, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                yield i, json.loads(text)
            except json.JSONDecodeError as exc:
                yield i, DataError(f"not valid JSON ({exc.msg})")


def _cb_dialogue(record: Mapping[str, Any], line: int, fractions: Mapping[str, float]) -> Dialogue:
    """Build one Dialogue from a record in the Hugging Face layout."""
    info, items, acts = record["agent_info"], record["items"], record["dialogue_acts"]
    roles = [str(r).strip().lower() for r in info["Role"]]
    if sorted(roles) != ["buyer", "seller"]:
        raise DataError(f"agent roles are {info['Role']!r}, expected one buyer and one seller")
    b_idx, s_idx = roles.index("buyer"), roles.index("seller")
    speakers, intents, prices, utterances = (
        record["agent_turn"],
        acts["intent"],
        acts["price"],
        record["utterance"],
    )
    if not len(speakers) == len(intents) == len(prices) == len(utterances):
        raise DataError("agent_turn, intent, price and utterance lists differ in length")
    turns = []
    for k, (who, intent, price, text) in enumerate(zip(speakers, intents, prices, utterances, strict=False), 1):
        if who not in (0, 1):
            raise DataError(f"turn {k} has speaker {who!r}, expected 0 or 1")
        act = None if not intent else Act.parse(intent)
        turns.append(
            DialogueTurn(
                role=Role(roles[who]),
                act=act,
                price=_cb_price(price),
                utterance=text if isinstance(text, str) else "",
            )
        )
    listing = _cb_price(items["Price"][s_idx])
    if listing is None:
        raise DataError(f"listing price {items['Price'][s_idx]!r} is not a positive price")
    buyer_t, seller_t = _cb_price(info["Target"][b_idx]), _cb_price(info["Target"][s_idx])
    if buyer_t is None or seller_t is None:
        raise DataError(f"targets {info['Target']!r} are not positive prices")
    title = str(items["Title"][s_idx] or "")
    key = "\x1f".join(
        [title, repr(listing), repr(buyer_t), repr(seller_t), *[t.utterance for t in turns]]
    )
    scenario = Scenario.build(
        id="cb-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
        title=title,
        listing_price=listing,
        buyer_target=buyer_t,
        seller_target=seller_t,
        description=str(items["Description"][s_idx] or ""),
        category=str(items["Category"][s_idx] or ""),
        **fractions,
    )
    return Dialogue(scenario=scenario, turns=tuple(turns), line=line)


def read_craigslist(
    ref: str | Path,
    *,
    seller_bottom_fraction: float = DEFAULT_SELLER_BOTTOM_FRACTION,
    buyer_ceiling_fraction: float = DEFAULT_BUYER_CEILING_FRACTION,
) -> CraigslistFile:
    """Read a CraigslistBargains file: the dialogues, and the records skipped with reasons.

    A record is skipped (never silently: it is listed in ``skipped``) when it makes no sense as
    a negotiation: buyer target above seller target, non-positive listing, unknown speaker,
    lists of different lengths, unknown act label, or unreadable JSON. Reservation prices are
    derived from the listing with the given fractions (see ``Scenario.build``).
    """
    path = hub.resolve(ref)
    if not path.is_file():
        raise DataError(
            f"{ref}: no such file. Pass a CraigslistBargains JSON-lines, Parquet or "
            "CoCoA parsed.json file (see bot/datasets.py for where to get one)"
        )
    fractions = {
        "seller_bottom_fraction": seller_bottom_fraction,
        "buyer_ceiling_fraction": buyer_ceiling_fraction,
    }
    dialogues: list[Dialogue] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for line, record in _read_cb_records(path):
        if isinstance(record, Exception):
            skipped.append(Skipped(line, str(record)))
            continue
        try:
            dialogue = _cb_dialogue(record, line, fractions)
        except (HaggleError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, HaggleError) else f"malformed record: {exc!r}"
            skipped.append(Skipped(line, reason))
            continue
        if dialogue.scenario.id in seen:
            unique_id = f"{dialogue.scenario.id}-L{line}"
            dialogue = replace(dialogue, scenario=replace(dialogue.scenario, id=unique_id))
        seen.add(dialogue.scenario.id)
        dialogues.append(dialogue)
    if not dialogues and not skipped:
        raise DataError(f"{ref}: holds no dialogues (an empty file?)")
    if not dialogues:
        first = skipped[0]
        raise DataError(
            f"{ref}: none of its {len(skipped)} records could be read as a "
            f"CraigslistBargains dialogue (line {first.line}: {first.reason})"
        )
    if skipped:
        log.warning(
            "%s: skipped %d of %d records (first: line %d: %s)",
            ref,
            len(skipped),
            len(skipped) + len(dialogues),
            skipped[0].line,
            skipped[0].reason,
        )
    return CraigslistFile(path=path, dialogues=dialogues, skipped=skipped)


# The test split's items are split in two by a hash of the title (its 838 dialogues sell only 161
# items, so a split by dialogue would read items a narrator trained on): about a third are kept
# for blind reading (bench/narration_quality.py), the rest may train a narrator
# (`haggle train data --role narrator --split test`).
READING_SHARE = 3  # one item in READING_SHARE is kept for reading


def reading_item(title: str) -> bool:
    """Whether the test split's item ``title`` is kept for blind reading (never trained on)."""
    digest = hashlib.sha256(title.strip().lower().encode("utf-8")).digest()
    return digest[0] % READING_SHARE == 0


def load_craigslist(ref: str | Path, **fractions: float) -> list[Dialogue]:
    """The dialogues of a CraigslistBargains file (skipped records are logged as a warning).

    Use ``read_craigslist`` to get the skipped records themselves.
    """
    return read_craigslist(ref, **fractions).dialogues


def load_scenarios(
    ref: str | Path,
    *,
    n: int | None = None,
    seed: int | None = None,
    **fractions: float,
) -> list[Scenario]:
    """Scenarios of a CraigslistBargains file: all in file order, or ``n`` of them.

    With ``n`` and a ``seed`` the sample is random but the same for the same seed and file;
    with ``n`` and no seed it is the first ``n``.
    """
    scenarios = [d.scenario for d in load_craigslist(ref, **fractions)]
    if n is None:
        return scenarios
    if n < 0 or n > len(scenarios):
        raise DataError(
            f"asked for {n} scenarios but {ref} has {len(scenarios)}: pick 0..{len(scenarios)}"
        )
    if seed is None:
        return scenarios[:n]
    return random.Random(seed).sample(scenarios, n)
