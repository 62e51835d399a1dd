"""Dataset readers: CraigslistBargains dialogues, AgreeMate's published runs, scenario sets.

Edge module (reads files, resolves ``hf://`` references through ``bot.hub``); the parsed
results are the pure core's types (``Scenario``, ``Role``, ``Act``).

CraigslistBargains (He et al. 2018)
    ``load_craigslist(ref)`` reads the Hugging Face form of the dataset: JSON lines as written
    by ``datasets``' ``to_json`` (the offline copies in ``shared/data/craigslist_bargains/``),
    the same records as Parquet (needs ``pyarrow``: the [dev] extra has it, the runtime does not), or the
    original CoCoA ``parsed.json`` (a JSON array of ``{"scenario", "events"}``) that the Hub
    loader converts. ``ref`` is a local path or ``hf://datasets/OWNER/REPO/FILE``.

    Where the train split lives: the Hub dataset ``stanfordnlp/craigslist_bargains`` holds no
    data file, only a loading script (``craigslist_bargains.py``, plus README.md and
    .gitattributes) that downloads CoCoA ``parsed.json`` bundles from CodaLab
    (train: bundle 0xd34bbbc5fb3b4fccbd19e10756ca8dd7, validation: 0x15c4160b43d44ee3a8386cca98da138c;
    test: 0x54d325bbcfb2463583995725ed8ca42b). ``datasets`` 4 no longer runs loading scripts.
    So the train split is had either as that ``parsed.json`` (pass its local path), or as a
    JSON-lines/Parquet export of it in some Hub dataset repository, e.g.
    ``load_craigslist("hf://datasets/OWNER/REPO/train.json")`` (the file a
    ``load_dataset("stanfordnlp/craigslist_bargains", trust_remote_code=True)["train"].to_json(...)``
    with ``datasets<4`` writes). Validation has the same schema and is offline in shared/data.

    Scenario ids are ``cb-`` + the first 12 hex digits of the SHA-1 of the title, listing price,
    both targets and every utterance: stable across file formats and line order, unlike a line
    number, and unique per dialogue, unlike the listing's image (one listing is negotiated in
    many dialogues). A later identical dialogue in the same file gets ``-L<line>`` appended.

    Prices in the dataset are float32 (the JSON export shows 7.9000000954); they are read back
    as the shortest decimal that is the same float32 (7.9).

AgreeMate runs (Chatterjee et al. 2024)
    ``load_agreemate_csv(path)`` reads one of the paper's published result files (see
    shared/data/README.md); malformed rows are skipped and listed in ``bad_rows``.
    ``load_agreemate_scenarios()`` gives the paper's 30 test scenarios, shipped as
    ``bot/data/agreemate_scenarios.json``; rebuild that file from the CSVs with
    ``python -m bot.datasets ../shared/data/agreemate_results``.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import logging
import math
import random
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from bot import hub
from bot.errors import DataError, HaggleError, TurnError
from bot.negotiation.scenario import (
    DEFAULT_BUYER_CEILING_FRACTION,
    DEFAULT_SELLER_BOTTOM_FRACTION,
    Scenario,
)
from bot.negotiation.turns import Act, Role

log = logging.getLogger(__name__)

AGREEMATE_SCENARIOS_RESOURCE = "data/agreemate_scenarios.json"
AGREEMATE_SOURCE = {
    "repository": "GeneralCoder365/agreemate",
    "commit": "72365bab0bc01bb38481af065a743db91d4c486a",
    "path": "results/",
    "license": "MIT License, Copyright (c) 2024 Ainesh Chatterjee",
    "paper": "AgreeMate: Teaching LLMs to Haggle (Chatterjee, Miller, Parepally 2024, arXiv 2412.18690)",
}


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
    for k, (who, intent, price, text) in enumerate(zip(speakers, intents, prices, utterances), 1):
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


# =========================================================================== AgreeMate runs

AGREEMATE_REQUIRED_COLUMNS = (
    "scenario_id",
    "title",
    "description",
    "category",
    "listing_price",
    "buyer_target",
    "seller_target",
    "outcome",
    "accepted_price",
    "transcript",
    "prices",
    "actions",
)
# The published metric columns (not every file has every one; rel_eff is a later duplicate).
AGREEMATE_METRIC_COLUMNS = (
    "bias",
    "aggressiveness",
    "fairness",
    "dialogue_length",
    "bias_cond_dialogue_length",
    "rel_efficiency",
    "rel_eff",
    "probing_ratio",
    "concession_rate",
)
_TRANSCRIPT_TURN = re.compile(r"^\t(Buyer|Seller): ", re.MULTILINE)


@dataclass(frozen=True)
class AgreeMateRow:
    """One published negotiation.

    ``prices`` has None where the CSV has -1.0 (no price); ``actions`` are the raw labels
    (free text from the models, often not an act at all). ``roles`` come from the transcript's
    "\\tBuyer: " / "\\tSeller: " lines (on all 2,700 published rows they alternate, buyer
    first, as the AgreeMate runner did); a transcript that does not split into one line per
    action falls back to that alternation, with ``utterances`` None.
    """

    line: int
    scenario_id: str
    title: str
    description: str
    category: str
    listing_price: float
    buyer_target: float
    seller_target: float
    outcome: str
    accepted_price: float | None
    prices: tuple[float | None, ...]
    actions: tuple[str, ...]
    roles: tuple[Role, ...]
    utterances: tuple[str, ...] | None
    published: Mapping[str, float | None]

    @property
    def agreed(self) -> bool:
        return self.outcome == "Accepted"

    @property
    def deal_price(self) -> float | None:
        """The deal price: ``accepted_price`` of an Accepted row (None where the CSV has none)."""
        return self.accepted_price if self.agreed else None

    @property
    def turns(self) -> list[dict[str, Any]]:
        """The turns as mappings for ``bot.negotiation.metrics.compute_metrics``."""
        texts = self.utterances or ("",) * len(self.actions)
        return [
            {"role": r, "act": a, "price": p, "utterance": u}
            for r, a, p, u in zip(self.roles, self.actions, self.prices, texts)
        ]

    def scenario(self, **fractions: float) -> Scenario:
        return Scenario.build(
            id=self.scenario_id,
            title=self.title,
            description=self.description,
            category=self.category,
            listing_price=self.listing_price,
            buyer_target=self.buyer_target,
            seller_target=self.seller_target,
            **fractions,
        )


@dataclass(frozen=True)
class AgreeMateFile:
    path: Path
    buyer_model: str  # e.g. "baseline-3B-buyer-aggressive"
    seller_model: str  # e.g. "baseline-COT-8B-seller"
    updated: bool  # an "_updated" file: the authors' second version of the same runs
    columns: tuple[str, ...]
    rows: list[AgreeMateRow]
    bad_rows: list[Skipped]


def parse_agreemate_name(path: str | Path) -> tuple[str, str, bool]:
    """(buyer model, seller model, updated) from ``<buyer>+<seller>[_updated].csv``."""
    stem = Path(path).stem
    updated = stem.endswith("_updated")
    if updated:
        stem = stem[: -len("_updated")]
    parts = stem.split("+")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"{Path(path).name}: expected a file name <buyer>+<seller>[_updated].csv")
    return parts[0], parts[1], updated


def _cell_float(value: str, column: str) -> float | None:
    """A numeric cell; empty, "N/A" and "nan" mean undefined."""
    text = value.strip()
    if text in ("", "N/A", "nan", "NaN"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{column} is {value!r}, not a number") from None
    return None if math.isnan(number) else number


def _required_price(value: str, column: str) -> float:
    number = _cell_float(value, column)
    if number is None or not math.isfinite(number) or number <= 0:
        raise DataError(f"{column} is {value!r}, not a positive price")
    return number


def _literal_list(value: str, column: str) -> list[Any]:
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(f"{column} is not a Python list literal") from None
    if not isinstance(parsed, list):
        raise DataError(f"{column} is a {type(parsed).__name__}, not a list")
    return parsed


def _agreemate_row(
    row: Mapping[str, Any], line: int, metric_columns: Sequence[str]
) -> AgreeMateRow:
    prices_raw = _literal_list(row["prices"], "prices")
    actions = _literal_list(row["actions"], "actions")
    if len(prices_raw) != len(actions):
        raise DataError(f"{len(prices_raw)} prices but {len(actions)} actions")
    prices: list[float | None] = []
    for p in prices_raw:
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise DataError(f"price {p!r} is not a number")
        prices.append(float(p) if math.isfinite(p) and p > 0 else None)
    if not all(isinstance(a, str) for a in actions):
        raise DataError("actions holds a non-string")
    outcome = row["outcome"].strip()
    if outcome not in ("Accepted", "Rejected"):
        raise DataError(f"outcome is {row['outcome']!r}, expected Accepted or Rejected")
    accepted = _cell_float(row["accepted_price"], "accepted_price")
    if accepted is not None and not (math.isfinite(accepted) and accepted > 0):
        raise DataError(f"accepted_price is {row['accepted_price']!r}, not a positive price")

    pieces = _TRANSCRIPT_TURN.split(row["transcript"])
    speakers, texts = pieces[1::2], pieces[2::2]
    if pieces[0].strip() == "" and len(speakers) == len(actions):
        roles = tuple(Role(s.lower()) for s in speakers)
        utterances: tuple[str, ...] | None = tuple(t.rstrip("\n") for t in texts)
    else:
        roles = tuple(Role.BUYER if k % 2 == 0 else Role.SELLER for k in range(len(actions)))
        utterances = None
    return AgreeMateRow(
        line=line,
        scenario_id=row["scenario_id"],
        title=row["title"],
        description=row["description"],
        category=row["category"],
        listing_price=_required_price(row["listing_price"], "listing_price"),
        buyer_target=_required_price(row["buyer_target"], "buyer_target"),
        seller_target=_required_price(row["seller_target"], "seller_target"),
        outcome=outcome,
        accepted_price=accepted,
        prices=tuple(prices),
        actions=tuple(actions),
        roles=roles,
        utterances=utterances,
        published={c: _cell_float(row[c], c) for c in metric_columns},
    )


def load_agreemate_csv(path: str | Path) -> AgreeMateFile:
    """Read one AgreeMate result CSV; malformed rows are skipped into ``bad_rows``."""
    path = Path(path)
    buyer, seller, updated = parse_agreemate_name(path)
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from exc
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file, expected an AgreeMate result CSV")
        missing = [c for c in AGREEMATE_REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{path}: not an AgreeMate result CSV, missing column(s) {', '.join(missing)}"
            )
        metric_columns = [c for c in AGREEMATE_METRIC_COLUMNS if c in header]
        rows: list[AgreeMateRow] = []
        bad: list[Skipped] = []
        while True:
            line = reader.line_num + 1  # where the next row starts (rows span lines)
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad.append(Skipped(line, f"unreadable CSV: {exc}"))
                break  # the reader cannot resynchronise after a broken quote
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                bad.append(Skipped(line, f"{len(fields)} fields, header has {len(header)}"))
                continue
            try:
                rows.append(_agreemate_row(dict(zip(header, fields)), line, metric_columns))
            except (DataError, TurnError) as exc:
                bad.append(Skipped(line, str(exc)))
    if bad:
        log.warning(
            "%s: skipped %d malformed row(s) (first: line %d: %s)",
            path.name,
            len(bad),
            bad[0].line,
            bad[0].reason,
        )
    return AgreeMateFile(
        path=path,
        buyer_model=buyer,
        seller_model=seller,
        updated=updated,
        columns=tuple(header),
        rows=rows,
        bad_rows=bad,
    )


# =========================================================================== AgreeMate scenarios

_SCENARIO_FIELDS = (
    "scenario_id",
    "title",
    "description",
    "category",
    "listing_price",
    "buyer_target",
    "seller_target",
)


def build_agreemate_scenarios(csv_dir: str | Path) -> list[dict[str, Any]]:
    """The paper's scenarios recovered from every result CSV in ``csv_dir``, in run order.

    Every file ran the same scenarios; a scenario whose fields differ between files is an error.
    """
    files = sorted(Path(csv_dir).glob("*.csv"))
    if not files:
        raise DataError(f"{csv_dir}: no AgreeMate result CSVs (*.csv) there")
    scenarios: dict[str, dict[str, Any]] = {}
    for file in files:
        for row in load_agreemate_csv(file).rows:
            fields = {k: getattr(row, k) for k in _SCENARIO_FIELDS}
            known = scenarios.setdefault(row.scenario_id, fields)
            if known != fields:
                changed = [k for k in _SCENARIO_FIELDS if known[k] != fields[k]]
                raise DataError(
                    f"{file.name} line {row.line}: scenario {row.scenario_id} differs "
                    f"from earlier files in {', '.join(changed)}"
                )
    return list(scenarios.values())


def agreemate_scenarios_document(csv_dir: str | Path) -> dict[str, Any]:
    """The JSON document shipped as bot/data/agreemate_scenarios.json."""
    return {"source": AGREEMATE_SOURCE, "scenarios": build_agreemate_scenarios(csv_dir)}


def write_agreemate_scenarios(csv_dir: str | Path, out: str | Path) -> int:
    """Rebuild the shipped scenario file from the result CSVs; returns the scenario count."""
    document = agreemate_scenarios_document(csv_dir)
    Path(out).write_text(
        json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return len(document["scenarios"])


def load_agreemate_scenarios(
    *,
    seller_bottom_fraction: float = DEFAULT_SELLER_BOTTOM_FRACTION,
    buyer_ceiling_fraction: float = DEFAULT_BUYER_CEILING_FRACTION,
) -> list[Scenario]:
    """The AgreeMate paper's 30 test scenarios (the ``agreemate`` scenario set)."""
    text = resources.files("bot").joinpath(AGREEMATE_SCENARIOS_RESOURCE).read_text(encoding="utf-8")
    return [
        Scenario.build(
            id=s["scenario_id"],
            title=s["title"],
            description=s["description"],
            category=s["category"],
            listing_price=s["listing_price"],
            buyer_target=s["buyer_target"],
            seller_target=s["seller_target"],
            seller_bottom_fraction=seller_bottom_fraction,
            buyer_ceiling_fraction=buyer_ceiling_fraction,
        )
        for s in json.loads(text)["scenarios"]
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild bot/data/agreemate_scenarios.json: python -m bot.datasets CSV_DIR [OUT]."""
    parser = argparse.ArgumentParser(prog="python -m bot.datasets", description=main.__doc__)
    parser.add_argument(
        "csv_dir", help="folder of AgreeMate result CSVs (shared/data/agreemate_results)"
    )
    parser.add_argument(
        "out", nargs="?", default=str(Path(__file__).parent / AGREEMATE_SCENARIOS_RESOURCE)
    )
    args = parser.parse_args(argv)
    count = write_agreemate_scenarios(args.csv_dir, args.out)
    print(f"wrote {count} scenarios to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
