"""The dataset readers, on the real shared files and on small malformed files made here."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from bot.agreemate import (
    AGREEMATE_SCENARIOS_RESOURCE,
    agreemate_scenarios_document,
    build_agreemate_scenarios,
    load_agreemate_csv,
    load_agreemate_scenarios,
    parse_agreemate_name,
)
from bot.datasets import load_craigslist, load_scenarios, read_craigslist
from bot.errors import DataError
from bot.hub import HubError
from bot.negotiation.turns import Act, Role
from tests.conftest import REPO, shared_file


def validation() -> Path:
    return shared_file("craigslist_bargains", "validation.json")


def agreemate_dir() -> Path:
    return shared_file("agreemate_results")


def record(**overrides):
    """A CraigslistBargains record in the Hugging Face layout (3 turns, a deal at 90)."""
    rec = {
        "agent_info": {
            "Bottomline": ["None", "None"],
            "Role": ["buyer", "seller"],
            "Target": [80.0, 100.0],
        },
        "agent_turn": [0, 1, 0],
        "dialogue_acts": {
            "intent": ["init-price", "counter-price", "accept"],
            "price": [80.0, 90.0, -1.0],
        },
        "utterance": ["80?", "90.", ""],
        "items": {
            "Category": ["bike", "bike"],
            "Images": ["bike/1_0.jpg", "bike/1_0.jpg"],
            "Price": [100.0, 100.0],
            "Description": ["A bike", "A bike"],
            "Title": ["Bike", "Bike"],
        },
    }
    rec.update(overrides)
    return rec


def write_lines(path: Path, lines) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


# =========================================================================== CraigslistBargains


def test_validation_split_reads_completely():
    data = read_craigslist(validation())
    assert len(data.dialogues) == 597 and data.skipped == []
    assert sum(len(d.turns) for d in data.dialogues) == 5475
    assert len({d.scenario.id for d in data.dialogues}) == 597
    assert sum(d.labelled for d in data.dialogues) == 453  # the rest have only "" intents

    first = data.dialogues[0]
    s = first.scenario
    assert (s.title, s.category, s.listing_price) == (
        "GoPro Hero4 Black + Battery BacPac",
        "electronics",
        265.0,
    )
    assert (s.buyer_target, s.seller_target) == (243.0, 265.0)
    assert (s.seller_reservation, s.buyer_reservation) == (0.7 * 265.0, 265.0)
    assert first.line == 1
    assert [t.role for t in first.turns] == [
        Role(r) for r in ["buyer", "seller"] * 4 + ["seller", "buyer"]
    ]
    assert [t.act for t in first.turns][:3] == [Act.INTRO, Act.UNKNOWN, Act.UNKNOWN]
    assert first.turns[-1].act is Act.ACCEPT and first.turns[-1].utterance == ""
    assert [t.price for t in first.turns] == [None] * 6 + [243.0, None, 243.0, None]
    assert first.turns[0].utterance == "hi there"


def test_inquiry_maps_to_inquire_and_float32_noise_is_removed():
    dialogue = load_craigslist(validation())[206]  # line 207 stores 7.9 as 7.9000000954
    assert dialogue.line == 207
    assert [t.price for t in dialogue.turns if t.price] == [10.5, 8.0, 7400.0, 7.9, 7800.0, 7.0]
    assert [t.act for t in dialogue.turns].count(Act.INQUIRE) == 3


def test_test_split_has_no_labels():
    dialogues = load_craigslist(shared_file("craigslist_bargains", "test.json"))
    assert len(dialogues) == 838
    assert not any(d.labelled for d in dialogues)
    assert all(t.act is None and t.price is None for d in dialogues for t in d.turns)


def test_reservation_fractions_are_configurable():
    s = load_craigslist(validation(), seller_bottom_fraction=0.5, buyer_ceiling_fraction=1.2)[
        0
    ].scenario
    assert s.seller_reservation == 132.5 and s.buyer_reservation == pytest.approx(318.0)


def test_ids_depend_on_content_not_position(tmp_path):
    lines = validation().read_text(encoding="utf-8").splitlines()[:5]
    shuffled = write_lines(tmp_path / "shuffled.json", list(reversed(lines)))
    original = {d.scenario.id for d in load_craigslist(validation())[:5]}
    assert {d.scenario.id for d in load_craigslist(shuffled)} == original
    # An identical dialogue later in a file keeps a distinct id.
    twice = load_craigslist(write_lines(tmp_path / "twice.json", [lines[0], lines[0]]))
    assert twice[1].scenario.id == f"{twice[0].scenario.id}-L2"


def test_malformed_records_are_skipped_and_reported(tmp_path, caplog):
    path = write_lines(
        tmp_path / "bad.json",
        [
            record(),  # 1 good
            record(
                agent_info={
                    "Bottomline": ["None"] * 2,
                    "Role": ["buyer", "seller"],
                    "Target": [120.0, 100.0],
                }
            ),
            record(items={**record()["items"], "Price": [-1.0, -1.0]}),  # 3 no listing
            '{"agent_info": ',  # 4 broken JSON
            record(utterance=["only one"]),  # 5 lengths
            record(agent_turn=[0, 2, 0]),  # 6 speaker
            record(
                dialogue_acts={"intent": ["haggle", "offer", "accept"], "price": [80.0, 90.0, -1.0]}
            ),
            "",  # 8 blank: ignored
            record(agent_info={"Role": ["buyer", "buyer"], "Target": [80.0, 100.0]}),  # 9 roles
            {"something": "else"},  # 10 not a dialogue
        ],
    )
    with caplog.at_level(logging.WARNING, logger="bot.datasets"):
        data = read_craigslist(path)
    assert [d.line for d in data.dialogues] == [1]
    reasons = {s.line: s.reason for s in data.skipped}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 9, 10]
    assert "above seller target" in reasons[2]
    assert "listing price" in reasons[3]
    assert "not valid JSON" in reasons[4]
    assert "differ in length" in reasons[5]
    assert "speaker 2" in reasons[6]
    assert "unknown act 'haggle'" in reasons[7]
    assert "roles" in reasons[9]
    assert "malformed record" in reasons[10]
    load_craigslist(path)
    assert "skipped 8 of 9 records" in caplog.text


def test_files_with_nothing_readable_are_errors(tmp_path):
    with pytest.raises(DataError, match="none of its 2 records"):
        read_craigslist(write_lines(tmp_path / "junk.json", ["not json", "[also not"]))
    (tmp_path / "empty.json").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no dialogues"):
        read_craigslist(tmp_path / "empty.json")
    with pytest.raises(DataError, match="no such file"):
        read_craigslist(tmp_path / "missing.json")


def test_cocoa_parsed_json_is_converted(tmp_path):
    # The original CodaLab format the Hub loading script reads (a JSON array of dialogues).
    cocoa = [
        {
            "uuid": "C_1",
            "scenario": {
                "kbs": [
                    {
                        "personal": {"Role": "buyer", "Target": 80, "Bottomline": None},
                        "item": {
                            "Category": "bike",
                            "Images": ["bike/1_0.jpg"],
                            "Price": 100,
                            "Description": ["Red.", "Fast."],
                            "Title": "Bike",
                        },
                    },
                    {
                        "personal": {"Role": "seller", "Target": 100, "Bottomline": None},
                        "item": {
                            "Category": "bike",
                            "Images": ["bike/1_0.jpg"],
                            "Price": 100,
                            "Description": ["Red.", "Fast."],
                            "Title": "Bike",
                        },
                    },
                ]
            },
            "events": [
                {
                    "agent": 0,
                    "action": "message",
                    "data": "Would you take 80?",
                    "metadata": {"intent": "init-price", "price": 80},
                },
                {
                    "agent": 1,
                    "action": "message",
                    "data": "Is it for you?",
                    "metadata": {"intent": "inquiry"},
                },
                {
                    "agent": 0,
                    "action": "offer",
                    "data": {"price": 85, "sides": ""},
                    "metadata": {"intent": "offer", "price": 85},
                },
                {"agent": 1, "action": "accept", "data": None, "metadata": None},
            ],
        }
    ]
    path = tmp_path / "parsed.json"
    path.write_text(json.dumps(cocoa), encoding="utf-8")
    [dialogue] = load_craigslist(path)
    assert dialogue.scenario.description == "Red.,Fast."  # joined as the Hub script does
    assert (dialogue.scenario.listing_price, dialogue.scenario.buyer_target) == (100.0, 80.0)
    assert [(t.role.value, t.act, t.price, t.utterance) for t in dialogue.turns] == [
        ("buyer", Act.INIT_PRICE, 80.0, "Would you take 80?"),
        ("seller", Act.INQUIRE, None, "Is it for you?"),
        ("buyer", Act.OFFER, 85.0, ""),
        ("seller", None, None, ""),
    ]


def test_parquet_has_the_same_records(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in validation().read_text(encoding="utf-8").splitlines()[:20]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation.parquet")
    from_parquet = load_craigslist(tmp_path / "validation.parquet")
    assert [d.scenario for d in from_parquet] == [
        d.scenario for d in load_craigslist(validation())[:20]
    ]


def fake_hub_cache(root: Path, repo: str, files: dict[str, Path]) -> Path:
    """A huggingface-hub cache holding ``files`` of dataset ``repo`` at one snapshot."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / ("datasets--" + repo.replace("/", "--"))
    for name, source in files.items():
        target = repo_dir / "snapshots" / sha / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(sha)
    return root


def test_hf_reference_reads_the_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = fake_hub_cache(
        tmp_path / "hub", "someone/craigslist_bargains", {"data/validation.json": validation()}
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface-hub reads both variables once, at import: set what it already read too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    ref = "hf://datasets/someone/craigslist_bargains/data/validation.json"
    dialogues = load_craigslist(ref)
    assert len(dialogues) == 597
    assert dialogues[0].scenario == load_craigslist(validation())[0].scenario

    missing = "hf://datasets/someone/craigslist_bargains/data/train.json"
    with pytest.raises(HubError, match="hf://datasets/someone/craigslist_bargains/data/train.json"):
        load_craigslist(missing)


def test_load_scenarios_samples_deterministically():
    everything = load_scenarios(validation())
    assert len(everything) == 597
    assert load_scenarios(validation(), n=3) == everything[:3]
    sample = load_scenarios(validation(), n=5, seed=7)
    assert sample == load_scenarios(validation(), n=5, seed=7)
    assert sample != load_scenarios(validation(), n=5, seed=8)
    assert len({s.id for s in sample}) == 5 and all(s in everything for s in sample)
    with pytest.raises(DataError, match="has 597"):
        load_scenarios(validation(), n=598)


# =========================================================================== AgreeMate CSVs


@pytest.fixture(scope="module")
def agreemate_files():
    return [load_agreemate_csv(p) for p in sorted(agreemate_dir().glob("*.csv"))]


def test_all_published_runs_read_cleanly(agreemate_files):
    assert len(agreemate_files) == 90
    rows = [r for f in agreemate_files for r in f.rows]
    assert len(rows) == 2700
    assert all(f.bad_rows == [] and len(f.rows) == 30 for f in agreemate_files)
    assert sum(f.updated for f in agreemate_files) == 35
    assert sum(r.agreed for r in rows) == 2140
    assert sum(r.deal_price is not None for r in rows) == 2123  # 17 Accepted rows lack a price
    # Roles from the transcript alternate buyer first on every row, as the runner did.
    for r in rows:
        assert r.utterances is not None and len(r.utterances) == len(r.actions) == len(r.prices)
        assert list(r.roles) == [
            Role.BUYER if k % 2 == 0 else Role.SELLER for k in range(len(r.actions))
        ]


def test_first_published_row(agreemate_files):
    f = agreemate_files[0]
    assert f.path.name == "baseline-1B-buyer+baseline-3B-seller.csv"
    assert (f.buyer_model, f.seller_model, f.updated) == (
        "baseline-1B-buyer",
        "baseline-3B-seller",
        False,
    )
    r = f.rows[0]
    assert r.line == 2 and f.rows[1].line > 2  # rows span several physical lines
    assert (r.scenario_id, r.listing_price, r.buyer_target, r.seller_target) == (
        "09aea678-c5cd-4967-8a2f-b650f3520c55",
        10.0,
        7.0,
        10.0,
    )
    assert (r.outcome, r.accepted_price, r.deal_price) == ("Accepted", 7.0, 7.0)
    assert r.prices == (8.0, 9.0, 7.0, 7.75, 6.75, 8.0, 7.0, 7.0, 7.0)
    assert r.actions[-1] == "agree"
    assert r.utterances[0] == "I think the lowest I would want to go is $8."
    assert r.published == {
        "bias": 1.0,
        "aggressiveness": 0.3,
        "fairness": 0.0,
        "dialogue_length": 9.0,
        "bias_cond_dialogue_length": 1 / 9,
    }
    assert r.turns[1] == {
        "role": Role.SELLER,
        "act": "offer",
        "price": 9.0,
        "utterance": "I can do $9, it's a fair price considering the quality and "
        "features of the charger.",
    }


def test_model_names_from_file_names():
    assert parse_agreemate_name(
        "baseline-3B-buyer-aggressive+baseline-COT-8B-seller_updated.csv"
    ) == ("baseline-3B-buyer-aggressive", "baseline-COT-8B-seller", True)
    with pytest.raises(DataError, match="<buyer>\\+<seller>"):
        parse_agreemate_name("results.csv")


HEADER = [
    "",
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
    "fairness",
]


def agreemate_row(i, **overrides):
    row = {
        "": str(i),
        "scenario_id": "s1",
        "title": "Bike",
        "description": "Red",
        "category": "bike",
        "listing_price": "100.0",
        "buyer_target": "80.0",
        "seller_target": "100.0",
        "outcome": "Accepted",
        "accepted_price": "90.0",
        "transcript": "\tBuyer: 80?\n\tSeller: 90.\n\tBuyer: Deal.\n",
        "prices": "[80.0, 90.0, -1.0]",
        "actions": "['offer', 'counter-price', 'accept']",
        "fairness": "0.0",
    }
    row.update(overrides)
    return [row[c] for c in HEADER]


def write_csv(path: Path, rows, header=HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_malformed_agreemate_rows_are_skipped_with_line_numbers(tmp_path, caplog):
    path = write_csv(
        tmp_path / "a-buyer+b-seller.csv",
        [
            agreemate_row(0),  # line 2-5 (transcript has 3 newlines)
            agreemate_row(1, prices="[80.0, 90.0"),  # unparseable list
            agreemate_row(2, prices="[80.0, 90.0]"),  # lengths differ
            agreemate_row(3, listing_price="free"),  # not a number
            agreemate_row(4, outcome="Maybe"),
            agreemate_row(5, prices="[80.0, 'x', -1.0]"),
            agreemate_row(6)[:5],  # truncated row
            agreemate_row(
                7, accepted_price="N/A", outcome="Rejected", transcript="garbled", fairness=""
            ),
            agreemate_row(8, fairness="high"),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="bot.agreemate"):
        f = load_agreemate_csv(path)
    assert [r.scenario_id for r in f.rows] == ["s1", "s1"]
    good, garbled = f.rows
    assert good.line == 2 and good.utterances == ("80?", "90.", "Deal.")
    assert good.prices == (80.0, 90.0, None) and good.published == {"fairness": 0.0}
    # A transcript that does not split into one line per action: roles by alternation.
    assert garbled.utterances is None and garbled.roles == (Role.BUYER, Role.SELLER, Role.BUYER)
    assert garbled.accepted_price is None and garbled.deal_price is None
    assert garbled.published == {"fairness": None}
    reasons = [s.reason for s in f.bad_rows]
    assert len(reasons) == 7
    assert "prices is not a Python list literal" in reasons[0]
    assert "2 prices but 3 actions" in reasons[1]
    assert "listing_price is 'free'" in reasons[2]
    assert "outcome is 'Maybe'" in reasons[3]
    assert "price 'x' is not a number" in reasons[4]
    assert "5 fields, header has 14" in reasons[5]
    assert "fairness is 'high'" in reasons[6]
    lines = [s.line for s in f.bad_rows]
    assert lines == sorted(lines) and lines[0] == 6  # physical lines where each bad row starts
    assert "skipped 7 malformed row(s)" in caplog.text


def test_agreemate_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="missing column\\(s\\) prices"):
        load_agreemate_csv(
            write_csv(tmp_path / "a+b.csv", [], header=[c for c in HEADER if c != "prices"])
        )
    (tmp_path / "c+d.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        load_agreemate_csv(tmp_path / "c+d.csv")
    with pytest.raises(DataError, match="cannot read"):
        load_agreemate_csv(tmp_path / "e+f.csv")


# =========================================================================== agreemate scenario set


def test_shipped_scenarios_equal_what_the_csvs_give():
    shipped = json.loads((REPO / "bot" / AGREEMATE_SCENARIOS_RESOURCE).read_text(encoding="utf-8"))
    assert shipped == agreemate_scenarios_document(agreemate_dir())
    assert shipped["source"]["commit"] == "72365bab0bc01bb38481af065a743db91d4c486a"
    assert "MIT" in shipped["source"]["license"]


def test_load_agreemate_scenarios():
    scenarios = load_agreemate_scenarios()
    assert len(scenarios) == 30 and len({s.id for s in scenarios}) == 30
    first = scenarios[0]
    assert first.id == "09aea678-c5cd-4967-8a2f-b650f3520c55"
    assert (first.listing_price, first.buyer_target, first.seller_target) == (10.0, 7.0, 10.0)
    assert first.seller_reservation == 7.0 and first.buyer_reservation == 10.0
    wide = load_agreemate_scenarios(seller_bottom_fraction=0.5, buyer_ceiling_fraction=1.1)[0]
    assert wide.seller_reservation == 5.0 and wide.buyer_reservation == pytest.approx(11.0)
    assert all(s.seller_target == s.listing_price for s in scenarios)


def test_scenarios_that_disagree_across_files_are_an_error(tmp_path):
    write_csv(tmp_path / "a+b.csv", [agreemate_row(0)])
    write_csv(tmp_path / "c+d.csv", [agreemate_row(0, buyer_target="85.0")])
    with pytest.raises(DataError, match="c\\+d.csv line 2: scenario s1 differs .* buyer_target"):
        build_agreemate_scenarios(tmp_path)
    with pytest.raises(DataError, match="no AgreeMate result CSVs"):
        build_agreemate_scenarios(tmp_path / "nothing")
