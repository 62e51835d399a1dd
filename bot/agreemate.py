"""The AgreeMate paper (Chatterjee et al. 2024, arXiv 2412.18690) in one place: its published
result files read, its 30 scenarios shipped, its runs imported as reference tournaments.

Readers
    ``load_agreemate_csv(path)`` reads one of the paper's published result files
    (``<buyer>+<seller>[_updated].csv``; ``haggle data fetch agreemate-results`` gets all 90,
    see docs/data.md); malformed rows are
    skipped and listed in ``bad_rows``. ``load_agreemate_scenarios()`` gives the paper's 30 test
    scenarios, shipped as ``bot/data/agreemate_scenarios.json``; rebuild that file from the CSVs
    with ``haggle import-agreemate CSV_DIR --write-scenarios bot/data/agreemate_scenarios.json``.

Reference runs
    ``import_agreemate(store, path, cfg)`` stores one result file as the reference tournament
    ``agreemate/<file stem>`` (``haggle import-agreemate``), every metric recomputed with our
    definitions from the run's prices, actions, targets and outcome, so reports and the
    leaderboard show the paper's runs beside ours. ``import_reference_runs`` imports the folder
    ``[data] agreemate_results`` names, else the data cache's copy (``haggle experiment
    --with-agreemate``).
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.datasets import Skipped
from bot.errors import DataError, HaggleError, StoreError, TurnError
from bot.files import file_sha256
from bot.negotiation.metrics import compute_metrics
from bot.negotiation.personality import NO_PERSONALITY, PERSONALITIES
from bot.negotiation.scenario import (
    DEFAULT_BUYER_CEILING_FRACTION,
    DEFAULT_SELLER_BOTTOM_FRACTION,
    Scenario,
)
from bot.negotiation.turns import Act, Outcome, Role

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)

AGREEMATE_SCENARIOS_RESOURCE = "data/agreemate_scenarios.json"
AGREEMATE_SOURCE = {
    "repository": "GeneralCoder365/agreemate",
    "commit": "72365bab0bc01bb38481af065a743db91d4c486a",
    "path": "results/",
    "license": "MIT License, Copyright (c) 2024 Ainesh Chatterjee",
    "paper": "AgreeMate: Teaching LLMs to Haggle (Chatterjee, Miller, Parepally 2024, arXiv 2412.18690)",
}


# =========================================================================== result files

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
            for r, a, p, u in zip(self.roles, self.actions, self.prices, texts, strict=False)
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
                rows.append(_agreemate_row(dict(zip(header, fields, strict=False)), line, metric_columns))
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


# =========================================================================== the 30 scenarios

_SCENARIO_FIELDS = (
    "scenario_id",
    "title",
    "description",
    "category",
    "listing_price",
    "buyer_target",
    "seller_target",
)


def build_agreemate_scenarios(csvs: str | Path | Sequence[Path]) -> list[dict[str, Any]]:
    """The paper's scenarios recovered from result CSVs (a folder's, or the files given), in run
    order.

    Every file ran the same scenarios; a scenario whose fields differ between files is an error.
    """
    if isinstance(csvs, (str, Path)):
        files = sorted(Path(csvs).glob("*.csv"))
        if not files:
            raise DataError(f"{csvs}: no AgreeMate result CSVs (*.csv) there")
    else:
        files = list(csvs)
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


def agreemate_scenarios_document(csvs: str | Path | Sequence[Path]) -> dict[str, Any]:
    """The JSON document shipped as bot/data/agreemate_scenarios.json."""
    return {"source": AGREEMATE_SOURCE, "scenarios": build_agreemate_scenarios(csvs)}


def write_agreemate_scenarios(csvs: str | Path | Sequence[Path], out: str | Path) -> int:
    """Rebuild the shipped scenario file from the result CSVs; returns the scenario count."""
    document = agreemate_scenarios_document(csvs)
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


# =========================================================================== reference runs

AGREEMATE_PREFIX = "agreemate/"
AGREEMATE_MAX_TURNS = 15  # the paper's cap; every Rejected row of the published runs hit it
_SCALE = re.compile(r"^\d+(?:\.\d+)?[BM]$")


def agreemate_agent(label: str) -> dict[str, Any]:
    """Agent metadata from a model label of the paper's file names.

    ``baseline-COT-70B-seller-aggressive`` -> family baseline, CoT, scale 70B, seller,
    personality aggressive; a label without a personality ran with no personality prompt
    ("default").
    """
    parts = label.split("-")
    role = next((p for p in parts if p in ("buyer", "seller")), None)
    personality = next((p for p in parts if p in PERSONALITIES), NO_PERSONALITY)
    return {"source": "agreemate", "kind": "llm", "family": parts[0], "role": role,
            "cot": "COT" in parts, "personality": personality,
            "scale": next((p for p in parts if _SCALE.match(p)), None), "model": label}


@dataclass
class ImportResult:
    name: str
    rows: int            # rows read
    added: int           # negotiations newly stored
    skipped: list[Skipped]  # malformed rows (line, reason)


def agreemate_record(row: AgreeMateRow, buyer: str, seller: str, *, seller_bottom_fraction: float,
                     buyer_ceiling_fraction: float) -> dict[str, Any]:
    """One published row as a record for ``Store.save_negotiation``, metrics recomputed.

    Acts are stored as our Act values (a label that is none, e.g. ``counter``, is
    ``unknown``), with the raw label beside them when it differs. Reservations come from
    ``[negotiation]`` like our own scenarios (the paper's runs had none), so surplus shares are
    comparable. A row Accepted without a price (a disagree cleared it in their runner) is a
    deal with no price: agreed, price metrics undefined, and a note in ``error``.
    """
    scenario = row.scenario(seller_bottom_fraction=seller_bottom_fraction,
                            buyer_ceiling_fraction=buyer_ceiling_fraction)
    turns = []
    for t in row.turns:
        try:
            act = Act.parse(t["act"]).value
        except TurnError:
            act = Act.UNKNOWN.value
        label = t["act"] if t["act"] != act else None
        turns.append({"role": t["role"].value, "act": act, "label": label, "price": t["price"],
                      "utterance": t["utterance"] or ""})
    note = None
    if row.agreed:
        outcome = Outcome.DEAL
        if row.deal_price is None:
            note = "published as Accepted without an accepted price: price metrics undefined"
    elif turns and turns[-1]["act"] in (Act.REJECT.value, Act.QUIT.value):
        outcome = Outcome(turns[-1]["act"])
    elif len(turns) >= AGREEMATE_MAX_TURNS:
        outcome = Outcome.TURN_LIMIT
    else:
        outcome = Outcome.REJECT
    metrics = compute_metrics(
        scenario.listing_price, scenario.buyer_target, scenario.seller_target, turns,
        row.deal_price, seller_reservation=scenario.seller_reservation,
        buyer_reservation=scenario.buyer_reservation)
    metrics["agreed"] = outcome is Outcome.DEAL
    return {"scenario": scenario.to_dict(), "agents": {"buyer": buyer, "seller": seller},
            "first_mover": turns[0]["role"] if turns else "buyer",
            "max_turns": AGREEMATE_MAX_TURNS, "turns": turns, "outcome": outcome.value,
            "deal_price": row.deal_price, "error": note, "started_at": None, "seconds": None,
            "metrics": metrics}


async def import_agreemate(store: Store, path: str | Path, cfg: Config, *,
                           prefix: str = AGREEMATE_PREFIX) -> ImportResult:
    """Import one AgreeMate result CSV as the reference tournament ``prefix + file stem``.

    Idempotent: importing the same file again adds nothing. Malformed rows are skipped and
    listed (with their line) in the result; the file's rows go in as one transaction.
    """
    path = Path(path)
    loaded = load_agreemate_csv(path)
    name = prefix + path.stem
    fractions = dict(seller_bottom_fraction=cfg.negotiation.seller_bottom_fraction,
                     buyer_ceiling_fraction=cfg.negotiation.buyer_ceiling_fraction)
    skipped = list(loaded.bad_rows)
    items = []
    seen: dict[str, int] = {}
    for row in loaded.rows:
        try:
            record = agreemate_record(row, loaded.buyer_model, loaded.seller_model, **fractions)
        except HaggleError as exc:
            skipped.append(Skipped(row.line, str(exc)))
            continue
        repetition = seen.get(row.scenario_id, 0)  # a scenario run twice in one file
        seen[row.scenario_id] = repetition + 1
        items.append((record, repetition, {"source_line": row.line,
                                           "published": dict(row.published)}))
    skipped.sort(key=lambda s: s.line)
    config = {"source": dict(AGREEMATE_SOURCE), "file": path.name, "sha256": file_sha256(path),
              "updated": loaded.updated, "columns": list(loaded.columns),
              "reservations": fractions}
    existing = await store.tournament(name)
    if existing is None:
        agents = {loaded.buyer_model: agreemate_agent(loaded.buyer_model),
                  loaded.seller_model: agreemate_agent(loaded.seller_model)}
        existing = await store.create_tournament(name, kind="reference", config=config,
                                                 agents=agents, planned=len(items),
                                                 source=str(path))
    elif existing.kind != "reference":
        raise StoreError(f"{name!r} in {store.path} is a tournament, not an imported reference "
                         f"run; import with another --prefix")
    elif existing.config.get("sha256") != config["sha256"]:
        raise StoreError(f"{name!r} in {store.path} was imported from a different version of "
                         f"{path.name}; import this one with another --prefix")
    added = await store.save_negotiations(existing.id, items)
    if existing.finished_at is None:
        await store.finish_tournament(existing.id)
    return ImportResult(name=name, rows=len(loaded.rows) + len(loaded.bad_rows), added=added,
                        skipped=skipped)


async def import_reference_runs(store: Store, cfg: Config) -> tuple[int, int]:
    """Import the published AgreeMate runs ([data] agreemate_results) that the database lacks.

    Returns (files imported now, files already there). Files already imported are not read.
    """
    from bot.data_sources import locate_folder

    folder = locate_folder(cfg, "agreemate-results")
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise DataError(f"no AgreeMate result CSVs in {folder}: set [data] agreemate_results in "
                        f"config.toml to the folder of the published runs (or \"\" for `haggle "
                        f"data fetch agreemate-results`), or drop --with-agreemate")
    present = {t.name for t in await store.tournaments()}
    imported = 0
    for path in files:
        if AGREEMATE_PREFIX + path.stem in present:
            continue
        parse_agreemate_name(path)
        await import_agreemate(store, path, cfg)
        imported += 1
    return imported, len(files) - imported
