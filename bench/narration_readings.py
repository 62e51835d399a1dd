"""What the blind readings so far say about the model's lines: every reading in docs/, pooled.

Each reading is a sample (docs/narration-sample/NAME/sample.jsonl: item, speaker, previous line,
line) and its key and answers (docs/narration-key/NAME/key.json, judged*.jsonl: sensible and
natural per line, one file per reader). This bench pools them and prints, for the model-written
lines (and people's and template lines beside them):

- sensible / natural by the shape of the line: where the price sits and how many sentences
  come before or after the one that states it (the evidence for ``sentences = 1``);
- by how many words in a row the line copies from the line before it (the other side's);
- a learned reranker, honestly validated: a logistic regression on the line's words (by role)
  trained on every reading but one group of scenarios and scored on the held-out group (AUC);
  a reranker worth building would rank unseen items' lines well, not only the items it read.

    .venv/bin/python bench/narration_readings.py [--docs docs]

Pure Python, no model: seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PRICE = re.compile(r"\$[\d,.]+")
_SEED = re.compile(r"seed(\d+)")


def readings(docs: Path) -> list[dict]:
    """Every judged line of every reading: sample fields + kind + the reader's answer."""
    rows = []
    for key_path in sorted((docs / "narration-key").rglob("key.json")):
        name = key_path.parent.relative_to(docs / "narration-key").as_posix()
        sample_path = docs / "narration-sample" / name / "sample.jsonl"
        if not sample_path.is_file():
            continue
        key = json.loads(key_path.read_text())
        sample = {r["id"]: r for r in map(json.loads, sample_path.read_text().splitlines())}
        for reader, judged in enumerate(sorted(key_path.parent.glob("judged*.jsonl"))):
            for answer in map(json.loads, judged.read_text().splitlines()):
                line = sample[answer["id"]]
                rows.append({**line, "reading": name, "reader": reader,
                             "kind": key[answer["id"]]["kind"],
                             "sensible": bool(answer["sensible"]), "natural": answer["natural"]})
    return rows


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


def features(r: dict) -> Counter:
    text = _PRICE.sub(" $P ", r["line"].lower())
    w = re.findall(r"[a-z$']+|[?!.,]", text)
    f: Counter = Counter()
    for a in w:
        f[f"{r['speaker']}:{a}"] += 1
        f[f"w:{a}"] += 1
    for a, b in zip(w, w[1:], strict=False):
        f[f"{r['speaker']}:{a}_{b}"] += 1
    f[f"len:{min(len(w) // 5, 6)}"] = 1
    f[f"copy:{min(copied_run(r['line'], r.get('previous') or ''), 5)}"] = 1
    return f


def fit_logistic(data: list[tuple[Counter, int]], epochs: int = 8, lr: float = 0.1,
                 l2: float = 1e-3) -> tuple[dict[str, float], float]:
    weights: dict[str, float] = defaultdict(float)
    bias = 0.0
    data = list(data)
    for epoch in range(epochs):
        random.Random(epoch).shuffle(data)
        for f, y in data:
            z = bias + sum(weights[k] * v for k, v in f.items())
            p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
            g = y - p
            bias += lr * g
            for k, v in f.items():
                weights[k] += lr * (g * v - l2 * weights[k])
    return weights, bias


def auc(scored: list[tuple[float, bool]]) -> float:
    pos = [s for s, y in scored if y]
    neg = [s for s, y in scored if not y]
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def reranker_report(rows: list[dict]) -> None:
    model = [r for r in rows if r["kind"] == "model"]
    human = [r for r in rows if r["kind"] == "human"]
    print("\nA reranker learned from the answers (logistic regression on the line's words by role,"
          "\nlength and copying; people's lines as extra sensible examples), AUC on held-out lines:")
    for split in ("reading", "scenarios"):
        def group(r, split=split):
            return r["reading"] if split == "reading" else scenario_group(r["reading"])

        pooled: list[tuple[float, bool]] = []
        per = []
        for held in sorted({group(r) for r in model}):
            train = [(features(r), int(r["sensible"])) for r in model if group(r) != held]
            train += [(features(r), 1) for r in human if group(r) != held][:400]
            weights, bias = fit_logistic(train)
            test = [(bias + sum(weights.get(k, 0.0) * v for k, v in features(r).items()), r["sensible"])
                    for r in model if group(r) == held]
            pooled += test
            per.append(f"{held} {auc(test):.2f}")
        label = ("one reading held out (its items seen in other readings)" if split == "reading"
                 else "one scenario set held out (items never seen)")
        print(f"  {label}: pooled AUC {auc(pooled):.2f}")
        if split == "scenarios":
            print("    " + ", ".join(per))


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
