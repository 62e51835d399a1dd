"""What the blind readings so far say about the model's lines: every reading in docs/, pooled.

Each reading is a sample (docs/narration-sample/NAME/sample.jsonl: item, speaker, previous line,
line) and its key and answers (docs/narration-key/NAME/key.json, judged*.jsonl: sensible and
natural per line, one file per reader). This bench pools them and prints, for the model-written
lines (and people's and template lines beside them):

- sensible / natural by the shape of the line: where the price sits and how many sentences
  come before or after the one that states it (the evidence for ``sentences = 1``);
- by how many words in a row the line copies from the line before it (the other side's);
- the line reader (training/line_reader.py), honestly validated: fit on every reading but one
  group of scenarios and scored on the held-out group (AUC); a reranker worth building ranks
  unseen items' lines well, not only the items it read.

    .venv/bin/python bench/narration_readings.py [--docs docs]

Pure Python, no model: seconds.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.line_reader import auc, fit, model_judgments, readings  # noqa: E402

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PRICE = re.compile(r"\$[\d,.]+")
_SEED = re.compile(r"seed(\d+)")


def scenario_group(reading: str) -> str:
    """Readings of one scenario set share items: hold them out together (early ones: seed 0/1)."""
    found = _SEED.search(reading)
    return f"seed {found.group(1)}" if found else "seed 0-1"


def shape(line: str) -> str:
    sentences = [s for s in _SENTENCE_END.split(line.strip()) if s]
    priced = [i for i, s in enumerate(sentences) if _PRICE.search(s)]
    if not priced:
        return f"unpriced, {min(len(sentences), 3)} sentence(s)"
    before, after = priced[0], len(sentences) - 1 - priced[0]
    return f"priced, {min(before, 2)} before / {min(after, 2)} after"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", _PRICE.sub(" ", text.lower()))


def copied_run(line: str, previous: str) -> int:
    """The most words in a row the line shares with the line before it (prices left out)."""
    a, b = _words(line), _words(previous.split(":", 1)[-1])
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def _table(title: str, rows: list[dict], key) -> None:
    print(f"\n{title}")
    print(f"  {'':34}" + "".join(f"{k:>22}" for k in ("model", "human", "template")))
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[key(r)][r["kind"]].append(r)
    for name in sorted(groups):
        cells = []
        for kind in ("model", "human", "template"):
            g = groups[name][kind]
            cells.append(f"{len(g):5d}  {sum(r['sensible'] for r in g) / len(g):4.0%} "
                         f"{sum(r['natural'] for r in g) / len(g):4.2f}" if g else "")
        print(f"  {name:34}" + "".join(f"{c:>22}" for c in cells))


def reranker_report(rows: list[dict]) -> None:
    """The line reader (training/line_reader.py, what ``pick = "reader"`` ships), fit on every
    reading but one group and scored on the held-out group: its AUC on lines it never saw."""
    print("\nThe line reader (training/line_reader.py: logistic regression on the line's words by"
          "\nrole and length), fit without one group of readings, AUC (sensible) on that group:")
    for split in ("reading", "scenarios"):
        def group(r, split=split):
            return r["reading"] if split == "reading" else scenario_group(r["reading"])

        model = [r for r in rows if r["kind"] == "model"]
        pooled: list[tuple[float, bool]] = []
        per = []
        for held in sorted({group(r) for r in model}):
            reader = fit(model_judgments([r for r in model if group(r) != held]), iterations=1000)
            test = [(reader.score(r["line"], r["speaker"]), r["sensible"]) for r in model if group(r) == held]
            pooled += test
            per.append(f"{held} {auc(test):.2f}")
        label = ("one reading held out (its items seen in other readings)" if split == "reading"
                 else "one scenario set held out (items never seen)")
        print(f"  {label}: pooled AUC {auc(pooled):.2f}")
        if split == "scenarios":
            print("    " + ", ".join(per))


def floor_report(rows: list[dict]) -> None:
    """What ``reader_floor`` would have removed as deployed: each seed's lines scored by a reader
    fit on the earlier seeds' readings only (seeds 7 on; 0-6 only train)."""
    def seed(r):
        found = _SEED.search(r["reading"])
        return int(found.group(1)) if found else 0

    model = [r for r in rows if r["kind"] == "model"]
    scored = []
    for s in sorted({seed(r) for r in model if seed(r) >= 7}):
        reader = fit(model_judgments([r for r in model if seed(r) < s]), iterations=1000)
        scored += [(reader.probability(r["line"], r["speaker"]), r) for r in model if seed(r) == s]
    if not scored:
        return
    print(f"\nA reader floor, each seed's model lines scored by a reader fit on earlier seeds only"
          f"\n({len(scored)} judgments; cells: share of lines, sensible, natural):")
    for floor in (0.3, 0.4, 0.5, 0.6, 0.7):
        under = [r for p, r in scored if p < floor]
        rest = [r for p, r in scored if p >= floor]
        def cell(g):
            return (f"{len(g) / len(scored):5.1%} {sum(r['sensible'] for r in g) / max(len(g), 1):4.0%} "
                    f"{sum(r['natural'] for r in g) / max(len(g), 1):4.2f}")
        print(f"  under {floor}: {cell(under)}   the rest: {cell(rest)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    rows = readings(args.docs)
    if not rows:
        raise SystemExit(f"no readings under {args.docs}/narration-key with a sample beside them")
    kinds = Counter(r["kind"] for r in rows)
    print(f"{len({(r['reading'], r['reader']) for r in rows})} readings, "
          + ", ".join(f"{n} {k} lines" for k, n in sorted(kinds.items()))
          + "  (cells: lines, sensible, natural)")
    _table("By the line's shape (where the price is, sentences before / after its sentence):",
           rows, lambda r: shape(r["line"]))
    _table("By the words in a row copied from the line before:", rows,
           lambda r: f"{min(copied_run(r['line'], r.get('previous') or ''), 5)} words"
           + ("+" if copied_run(r['line'], r.get('previous') or '') >= 5 else ""))
    reranker_report(rows)
    floor_report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
