"""bench/narration_paired.py: two variants' words for the same moves, read blind in one sample.
Pairs are only the moves both narrated in other words; logs of other games are refused; the
score pairs each reader's answers and tests the discordant pairs exactly."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import narration_paired as paired  # noqa: E402


def turn(index, line, *, act="counter-price", price=150.0, role="seller", fallback=False):
    return {"scenario": "cb-1", "index": index, "item": "Road bike", "listing": 200.0, "role": role,
            "act": act, "price": price, "line": line, "previous": "buyer: $120?", "fallback": fallback,
            "repaired": False}


def write_log(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def logs(tmp_path):
    a = write_log(tmp_path / "a.jsonl", [turn(0, "How about $150?"), turn(1, "Deal at $150.", act="accept"),
                                         turn(2, "I could do $150."), turn(3, "Is it still there?", act="inquire",
                                                                           price=None, role="buyer")])
    b = write_log(tmp_path / "b.jsonl", [turn(0, "Would you do $150?"), turn(1, "Deal at $150.", act="accept"),
                                         turn(2, "$150.", fallback=True), turn(3, "Any scratches?", act="inquire",
                                                                               price=None, role="buyer")])
    people = tmp_path / "earlier"
    people.mkdir()
    write_log(people / "sample.jsonl", [{"id": "L001", "item": "Lamp", "listing": "$20", "speaker": "buyer",
                                         "previous": "(first line)", "line": "would you take 15?"},
                                        {"id": "L002", "item": "Lamp", "listing": "$20", "speaker": "seller",
                                         "previous": "buyer: hi", "line": "$20."}])
    (people / "key.json").write_text(json.dumps({"L001": {"kind": "human"}, "L002": {"kind": "template"}}))
    return a, b, people


def test_the_sample_holds_both_words_of_each_move_and_people_lines_only(tmp_path, logs):
    a, b, people = logs
    out = tmp_path / "out"
    paired.build(out, ("old", a), ("new", b), people, humans_per=40, seed=1)
    key = json.loads((out / "key.json").read_text())
    sample = [json.loads(line) for line in (out / "sample.jsonl").read_text().splitlines()]
    lines = {s["id"]: s["line"] for s in sample}
    # turn 1: same words (left out); turn 2: b's is a template (left out); turns 0 and 3 pair up
    assert sorted(lines.values()) == sorted(["How about $150?", "Would you do $150?", "Is it still there?",
                                             "Any scratches?", "would you take 15?"])
    pairs = {}
    for lid, k in key.items():
        if k["kind"] != "human":
            assert k["kind"] == "model"
            pairs.setdefault(k["pair"], {})[k["variant"]] = lines[lid]
    assert pairs[0] == {"old": "How about $150?", "new": "Would you do $150?"}
    text = (out / "sample.md").read_text()
    assert "old" not in text and "new" not in text and "$200" in text  # blind; the listing as money


def test_logs_of_other_moves_are_refused(tmp_path, logs):
    a, _, people = logs
    other = write_log(tmp_path / "c.jsonl", [turn(0, "How about $140?", price=140.0), turn(1, "x", act="accept"),
                                             turn(2, "y"), turn(3, "z", act="inquire", price=None, role="buyer")])
    with pytest.raises(SystemExit, match="turn 0: the moves differ"):
        paired.build(tmp_path / "out", ("a", a), ("c", other), people, humans_per=1, seed=0)
    shorter = write_log(tmp_path / "d.jsonl", [turn(0, "How about $150?")])
    with pytest.raises(SystemExit, match="not of the same games"):
        paired.build(tmp_path / "out", ("a", a), ("d", shorter), None, humans_per=0, seed=0)


def test_the_score_pairs_each_readers_answers(tmp_path):
    reading = tmp_path / "reading"
    reading.mkdir()
    key, answers = {}, []
    for n in range(6):  # 6 pairs: "new" sensible in all, "old" in the first one only
        for kind, sensible, natural in (("old", n == 0, 2), ("new", True, 4 if n < 5 else 2)):
            lid = f"L{len(key) + 1:03d}"
            key[lid] = {"kind": "model", "variant": kind, "pair": n}
            answers.append({"id": lid, "sensible": sensible, "natural": natural})
    key["L999"] = {"kind": "human"}
    answers.append({"id": "L999", "sensible": True, "natural": 5})
    (reading / "key.json").write_text(json.dumps(key))
    write_log(reading / "judged-r1.jsonl", answers)
    result = paired.score([reading / "judged-r1.jsonl"])
    assert result["pairs"] == 6 and result["both_sensible"] == 1 and result["neither_sensible"] == 0
    assert (result["only_new"], result["only_old"]) == (5, 0)
    assert result["sign_test_p"] == pytest.approx(2 / 32)
    assert (result["natural_new_higher"], result["natural_tied"], result["natural_old_higher"]) == (5, 1, 0)
    assert result["kinds"]["human"] == {"lines": 1, "sensible": 1.0, "natural": 5.0}
    assert result["kinds"]["old"]["sensible"] == pytest.approx(1 / 6)
    assert paired.sign_test(3, 3) == 1.0 and paired.sign_test(0, 0) == 1.0
