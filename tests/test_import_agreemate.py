"""`haggle import-agreemate` and `haggle export`: the paper's published runs as reference
tournaments, with every metric recomputed by our definitions.

The main test imports all 90 files of shared/data/agreemate_results (2,700 negotiations),
exports them, and compares the exported fairness, aggressiveness, probing_ratio,
dialogue_length and signed bias with the CSV cells, read here with the csv module. Where the
CSV defines a value, ours equals it, except on the rows test_agreemate_reproduction.py
explains (their probing count skipped the label "inquiry"; one run published deal metrics for
Accepted rows without a price); those are checked to be exactly those rows.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import shutil
import sqlite3
from collections import Counter

import pytest

from bot.cli import main
from tests.conftest import shared_file

COMPARED = ("fairness", "aggressiveness", "probing_ratio", "dialogue_length", "bias")
PRICELESS_RUN = "finetune-3B-buyer+finetune-3B-seller"


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """The commands read an empty config of the test's own, not the repo's config.toml."""
    config = tmp_path / "empty-config.toml"
    config.write_text("")
    monkeypatch.setenv("HAGGLE_CONFIG", str(config))


def _cell(value: str) -> float | None:
    return None if value.strip() in ("", "nan", "NaN") else float(value)


def _published(folder) -> dict[tuple[str, str], dict[str, str]]:
    """(file stem, scenario id) -> the CSV row, for every file."""
    rows = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = (path.stem, row["scenario_id"])
                assert key not in rows, f"{path.name}: scenario {row['scenario_id']} twice"
                rows[key] = row
    return rows


def test_all_published_runs_import_and_export_with_their_metrics(tmp_path, capsys):
    folder = shared_file("agreemate_results")
    db = tmp_path / "ref.db"
    assert main(["import-agreemate", str(folder), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "90 file(s), 2700 rows: 2700 negotiations stored" in out
    assert "0 malformed row(s) skipped" in out
    exported = tmp_path / "all.jsonl"
    assert main(["export", "--db", str(db), "--format", "jsonl", "-o", str(exported)]) == 0
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(rows) == 2700

    published = _published(folder)
    assert len(published) == 2700
    matched: Counter[str] = Counter()
    explained: Counter[str] = Counter()
    for row in rows:
        assert row["tournament"].startswith("agreemate/")
        stem = row["tournament"].removeprefix("agreemate/")
        theirs_row = published[(stem, row["scenario_id"])]
        buyer, seller = stem.removesuffix("_updated").split("+")
        assert (row["buyer"], row["seller"]) == (buyer, seller)
        assert row["listing_price"] == float(theirs_row["listing_price"])
        agreed = theirs_row["outcome"] == "Accepted"
        assert (row["outcome"] == "deal") == agreed and row["agreed"] is agreed
        assert row["deal_price"] == (_cell(theirs_row["accepted_price"]) if agreed else None)
        where = f"{stem} scenario {row['scenario_id']}"
        for key in COMPARED:
            if key not in theirs_row:  # probing_ratio is absent from 3 files
                continue
            theirs, ours = _cell(theirs_row[key]), row[key]
            if theirs is None:
                assert ours is None, f"{where}: {key} empty in the CSV, ours {ours}"
            elif ours is not None and math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12):
                matched[key] += 1
            elif key == "probing_ratio":
                # Their count skipped turns labelled "inquiry" (the dataset's spelling).
                actions = ast.literal_eval(theirs_row["actions"])
                assert "inquiry" in actions, where
                assert math.isclose(ours - actions.count("inquiry") / len(actions), theirs), where
                explained[key] += 1
            else:
                # Their finetune run published deal metrics for deals without a price.
                assert stem == PRICELESS_RUN and agreed and row["deal_price"] is None, where
                assert ours is None and row["error"].startswith("published as Accepted"), where
                explained[key] += 1
    assert matched == {"dialogue_length": 2700, "probing_ratio": 2606, "fairness": 2123,
                       "aggressiveness": 2123, "bias": 2123}
    assert explained == {"probing_ratio": 4, "fairness": 5, "aggressiveness": 5, "bias": 5}

    # CSV export: the same rows, undefined cells empty.
    as_csv = tmp_path / "all.csv"
    assert main(["export", "--db", str(db), "--format", "csv", "-o", str(as_csv)]) == 0
    with as_csv.open(newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == 2700
    wanted = {"scenario_id", "buyer", "seller", "outcome", "deal_price", *COMPARED}
    assert wanted <= set(csv_rows[0])
    for j, c in zip(rows, csv_rows, strict=True):
        assert c["scenario_id"] == j["scenario_id"]
        assert c["fairness"] == ("" if j["fairness"] is None else repr(j["fairness"]))
        assert c["agreed"] == ("true" if j["agreed"] else "false")

    # Importing again adds nothing.
    assert main(["import-agreemate", str(folder / f"{PRICELESS_RUN}.csv"), "--db", str(db)]) == 0
    assert "0 negotiations stored" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM negotiations").fetchone()[0] == 2700
        assert conn.execute("SELECT count(*) FROM tournaments WHERE kind = 'reference'"
                            ).fetchone()[0] == 90


def test_write_scenarios_rebuilds_the_shipped_scenario_set(tmp_path, capsys):
    """The one AgreeMate command also rebuilds bot/data/agreemate_scenarios.json."""
    from tests.conftest import REPO

    out = tmp_path / "scenarios.json"
    assert main(["import-agreemate", str(shared_file("agreemate_results")),
                 "--write-scenarios", str(out)]) == 0
    assert "wrote 30 scenarios from 90 file(s)" in capsys.readouterr().out
    assert out.read_text() == (REPO / "bot" / "data" / "agreemate_scenarios.json").read_text()
    assert not (tmp_path / "haggle.db").exists()


def test_reference_tournaments_carry_agent_metadata_and_turns(tmp_path):
    folder = shared_file("agreemate_results")
    db = tmp_path / "ref.db"
    name = "baseline-COT-8B-buyer+baseline-3B-seller-aggressive"
    source = folder / "baseline-3B-buyer+baseline-3B-seller-aggressive.csv"
    shutil.copy(source, tmp_path / f"{name}.csv")  # the metadata comes from the file name
    assert main(["import-agreemate", str(tmp_path / f"{name}.csv"), "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        (agents,) = conn.execute("SELECT agents FROM tournaments").fetchone()
        labels = conn.execute("SELECT act, label FROM turns WHERE label IS NOT NULL").fetchall()
        acts = {r[0] for r in conn.execute("SELECT DISTINCT act FROM turns")}
    agents = json.loads(agents)
    assert agents["baseline-COT-8B-buyer"] == {
        "source": "agreemate", "kind": "llm", "family": "baseline", "role": "buyer", "cot": True,
        "personality": "default", "scale": "8B", "model": "baseline-COT-8B-buyer"}
    assert agents["baseline-3B-seller-aggressive"]["personality"] == "aggressive"
    assert agents["baseline-3B-seller-aggressive"]["cot"] is False
    from bot.negotiation.turns import Act

    assert acts <= {a.value for a in Act}  # garbage labels are stored as unknown ...
    assert all(act == "unknown" for act, _ in labels)  # ... with the label kept beside them


def test_malformed_rows_are_skipped_counted_and_reported_with_their_line(tmp_path, capsys):
    source = shared_file("agreemate_results", "baseline-3B-buyer+baseline-1B-seller.csv")
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header, *rows = list(reader)
    prices, outcome = header.index("prices"), header.index("outcome")
    rows[1][prices] = "[1.0, oops"            # not a list literal
    rows[4][outcome] = "Maybe"                # not Accepted/Rejected
    rows[6] = rows[6][:5]                     # a truncated row
    broken = tmp_path / "a-buyer+b-seller.csv"
    with broken.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    with broken.open(newline="", encoding="utf-8") as fh:  # where each row starts
        lines = [1]
        reader = csv.reader(fh)
        for _ in reader:
            lines.append(reader.line_num + 1)
    db = tmp_path / "h.db"
    assert main(["import-agreemate", str(broken), "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert "30 rows, 27 new, 3 malformed row(s) skipped" in captured.out
    for index, reason in ((1, "prices is not a Python list literal"),
                          (4, "outcome is 'Maybe'"), (6, "fields, header has")):
        assert f"a-buyer+b-seller.csv line {lines[index + 1]}: skipped: " in captured.err
        assert reason in captured.err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM negotiations").fetchone()[0] == 27
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("name, message", [("no-plus-sign.csv", "<buyer>+<seller>"),
                                           ("missing+file.csv", "does not exist")])
def test_bad_files_are_refused_before_anything_is_written(tmp_path, capsys, name, message):
    good = shared_file("agreemate_results", "baseline-3B-buyer+baseline-1B-seller.csv")
    bad = tmp_path / name
    if "plus" in name:
        bad.write_text("scenario_id\n1\n")
    db = tmp_path / "h.db"
    assert main(["import-agreemate", str(good), str(bad), "--db", str(db)]) == 2
    assert message in capsys.readouterr().err
    assert not db.exists()
