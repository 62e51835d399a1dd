"""bench/narration_readings.py: the blind readings kept in docs/ pool into one table, and the
line shapes and copying it counts are what they say."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import narration_readings as nr  # noqa: E402


def test_line_shapes():
    assert nr.shape("I can do $65 for it.") == "priced, 0 before / 0 after"
    assert nr.shape("How about $65? It is barely used.") == "priced, 0 before / 1 after"
    assert nr.shape("Hi there. How about $1,200?") == "priced, 1 before / 0 after"
    assert nr.shape("Does it still work? Any scratches?") == "unpriced, 2 sentence(s)"


def test_copied_run_counts_words_in_a_row_from_the_line_before_prices_left_out():
    assert nr.copied_run("I would be willing to take $30", "buyer: I would be willing to take $25") == 6
    assert nr.copied_run("Deal.", "seller: How about $40?") == 0


def test_every_reading_in_docs_loads_with_its_answers():
    rows = nr.readings(ROOT / "docs")
    readings = {r["reading"] for r in rows}
    assert len(readings) >= 20
    for name in readings:
        kinds = {r["kind"] for r in rows if r["reading"] == name}
        assert "model" in kinds and "human" in kinds, name
    assert all(isinstance(r["sensible"], bool) and 1 <= r["natural"] <= 5 for r in rows)
    assert nr.scenario_group("2026-12-03-one-seed6") == "seed 6"
    assert nr.scenario_group("2026-12-02/base") == "seed 0-1"


def test_auc():
    assert nr.auc([(0.9, True), (0.1, False)]) == 1.0
    assert nr.auc([(0.1, True), (0.9, False)]) == 0.0
    assert nr.auc([(0.5, True), (0.5, False)]) == 0.5


def test_the_floor_report_scores_each_seed_with_a_reader_of_earlier_seeds_only(capsys):
    rows = [{"reading": f"x-seed{s}", "id": f"L{s}{k}{i}", "pair": None, "kind": "model", "speaker": "buyer",
             "line": words.format(i), "sensible": ok, "natural": 4 if ok else 2}
            for s in (6, 7) for k, (words, ok) in enumerate((("How about ${}?", True),
                                                             ("I can do it for you ${}.", False)))
            for i in range(100, 130 if s == 6 else 103)]
    nr.floor_report(rows)
    out = capsys.readouterr().out
    assert "6 judgments" in out  # seed 7 only, scored by a reader of seed 6
    assert "under 0.5: 50.0%   0% 2.00   the rest: 50.0% 100% 4.00" in out
