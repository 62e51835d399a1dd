"""Fit the line reader (bot/negotiation/line_reader.py) on the blind readings kept in docs/.

    python -m training.line_reader --out bot/data/line_reader.json
    python -m training.line_reader --hold-out seed13 --hold-out seed14 --out /tmp/reader.json

A reading is a folder pair: ``docs/narration-sample/NAME/sample.jsonl`` (id, speaker, line, ...)
and ``docs/narration-key/NAME/`` with ``key.json`` (id -> kind) and one ``judged*.jsonl`` per
reader (id, sensible, natural). Only the model's lines are fit on: the reader ranks the
model's candidates, and people's or templates' lines are written differently. Each judgment
is one example (a line read by two readers counts twice); the target is "sensible".

The fit is an L2-regularised logistic regression (numpy, full-batch accelerated gradient
descent on the mean log-loss), deterministic. With ``--hold-out TEXT`` (repeatable) every
reading whose name contains TEXT is left out of the fit and scored: AUC over its lines, and
on paired readings (bench/narration_paired.py: two narrators' lines for the same move) how
often the line the reader prefers is the one the readers judged better.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.negotiation.line_reader import LineReader, reading_features

C = 0.03          # inverse L2 strength, per sklearn's convention (loss summed over examples)
MIN_LINES = 2     # a feature must occur in this many distinct lines
ITERATIONS = 3000


@dataclass(frozen=True)
class Judgment:
    reading: str
    id: str
    role: str
    line: str
    sensible: bool
    natural: int
    pair: int | None


def readings(docs: Path) -> list[dict]:
    """Every judged line of every reading under ``docs``: the sample's fields (id, item,
    speaker, previous, line, ...) with the reading's name, the reader's number, the key's kind
    and pair, and the answer's sensible and natural."""
    rows = []
    for key_path in sorted((docs / "narration-key").rglob("key.json")):
        name = key_path.parent.relative_to(docs / "narration-key").as_posix()
        sample_path = docs / "narration-sample" / name / "sample.jsonl"
        if not sample_path.is_file():
            continue
        key = json.loads(key_path.read_text(encoding="utf-8"))
        sample = {r["id"]: r for r in map(json.loads, sample_path.read_text(encoding="utf-8").splitlines())}
        for reader, judged in enumerate(sorted(key_path.parent.glob("judged*.jsonl"))):
            for text in judged.read_text(encoding="utf-8").splitlines():
                if not text.strip():
                    continue
                answer = json.loads(text)
                if answer.get("id") not in sample or answer["id"] not in key:
                    raise SystemExit(f"{judged}: answer {answer.get('id')!r} is no line of "
                                     f"{sample_path} and its key; remove it or fix the id")
                rows.append({**sample[answer["id"]], "reading": name, "reader": reader,
                             "kind": key[answer["id"]]["kind"], "pair": key[answer["id"]].get("pair"),
                             "sensible": bool(answer["sensible"]), "natural": int(answer["natural"])})
    return rows


def model_judgments(rows: list[dict]) -> list[Judgment]:
    """The model's lines among ``readings(...)``, as the fit takes them."""
    return [Judgment(r["reading"], r["id"], r["speaker"], r["line"], r["sensible"], r["natural"], r["pair"])
            for r in rows if r["kind"] == "model"]


def load_readings(docs: Path) -> list[Judgment]:
    """Every judged model line of the readings under ``docs``."""
    return model_judgments(readings(docs))


def _design(rows: list[Judgment], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row index, column index) of every present feature: a binary sparse matrix."""
    r, c = [], []
    for i, row in enumerate(rows):
        for f in reading_features(row.line, row.role):
            j = vocab.get(f)
            if j is not None:
                r.append(i)
                c.append(j)
    return np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)


def fit(rows: list[Judgment], *, c: float = C, min_lines: int = MIN_LINES,
        iterations: int = ITERATIONS) -> LineReader:
    if not rows or len({r.sensible for r in rows}) < 2:
        raise SystemExit("the readings hold no judged model lines of both kinds (sensible and "
                         "not): nothing to fit; check --docs")
    seen = Counter(f for line, role in {(r.line, r.role) for r in rows} for f in reading_features(line, role))
    names = sorted(f for f, n in seen.items() if n >= min_lines)
    vocab = {f: j for j, f in enumerate(names)}
    ri, ci = _design(rows, vocab)
    n, d = len(rows), len(names)
    y = np.array([r.sensible for r in rows], dtype=np.float64)

    def xw(w):
        return np.bincount(ri, weights=w[ci], minlength=n)

    def xtg(g):
        return np.bincount(ci, weights=g[ri], minlength=d)

    lam = 1.0 / (c * n)  # sum-loss + ||w||^2 / (2C)  ==  n * (mean-loss + lam/2 ||w||^2)
    # step: 1/L, L = max row count * max column count / 4 bounds the log-loss Hessian's norm
    L = 0.25 * np.bincount(ri).max() * np.bincount(ci, minlength=d).max() / n + lam
    w, b = np.zeros(d), 0.0
    vw, vb, t = w.copy(), b, 1.0
    for _ in range(iterations):
        z = xw(vw) + vb
        g = 1 / (1 + np.exp(-z)) - y
        w_next = vw - (xtg(g) / n + lam * vw) / L
        b_next = vb - g.mean() / L
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        vw = w_next + (t - 1) / t_next * (w_next - w)
        vb = b_next + (t - 1) / t_next * (b_next - b)
        w, b, t = w_next, b_next, t_next
    z = xw(w) + b
    loss = float(np.mean(np.logaddexp(0, z) - y * z))
    digest = hashlib.sha256("\n".join(
        json.dumps([r.reading, r.id, r.role, r.line, r.sensible]) for r in rows).encode()).hexdigest()
    return LineReader({f: round(float(v), 6) for f, v in zip(names, w, strict=True) if abs(v) >= 1e-6},
                      round(float(b), 6),
                      {"target": "sensible", "c": c, "min_lines": min_lines, "iterations": iterations,
                       "judgments": n, "lines": len({(r.line, r.role) for r in rows}),
                       "sensible_share": round(float(y.mean()), 4), "features": d,
                       "train_log_loss": round(loss, 4), "data_sha256": digest,
                       "readings": sorted({r.reading for r in rows})})


def auc(scored: list[tuple[float, bool]]) -> float:
    """The chance a sensible line scores above one that is not (ties half); nan without both."""
    pos = [s for s, y in scored if y]
    neg = [s for s, y in scored if not y]
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def held_out_scores(reader: LineReader, rows: list[Judgment]) -> dict:
    """AUC over the held-out lines, and pair-by-pair agreement with the readers on paired
    readings: of the pairs whose two lines the readers judged differently, how often the
    reader's preferred line is the better judged one, and what picking it gains on average."""
    out: dict = {"judgments": len(rows)}
    scores = [reader.score(r.line, r.role) for r in rows]
    out["auc_sensible"] = round(auc(list(zip(scores, [r.sensible for r in rows], strict=True))), 4)
    out["auc_natural_4"] = round(auc(list(zip(scores, [r.natural >= 4 for r in rows], strict=True))), 4)
    by_line: dict[tuple[str, str], list[Judgment]] = defaultdict(list)
    pairs: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in rows:
        by_line[(r.reading, r.id)].append(r)
        if r.pair is not None:
            pairs[(r.reading, r.pair)].add(r.id)
    agree = Counter()
    gains: dict[str, list[float]] = {"sensible": [], "natural": []}
    for (reading, _), ids in pairs.items():
        if len(ids) != 2:
            continue
        a, b = (by_line[(reading, i)] for i in sorted(ids))
        prefer_a = bool(reader.score(a[0].line, a[0].role) > reader.score(b[0].line, b[0].role))
        for what, value in (("sensible", lambda js: np.mean([j.sensible for j in js])),
                            ("natural", lambda js: np.mean([j.natural for j in js]))):
            va, vb = value(a), value(b)
            gains[what].append(float((va if prefer_a else vb) - (va + vb) / 2))
            if va != vb:
                agree[f"{what}_pairs"] += 1
                agree[f"{what}_agree"] += int(prefer_a == (va > vb))
    if gains["natural"]:
        out["pairs"] = len(gains["natural"])
        for what in ("sensible", "natural"):
            out[f"{what}_pairs_judged_apart"] = agree[f"{what}_pairs"]
            out[f"{what}_reader_agrees"] = agree[f"{what}_agree"]
            out[f"{what}_gain_over_a_coin"] = round(float(np.mean(gains[what])), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.line_reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=Path, default=Path("docs"),
                   help="the folder holding narration-sample/ and narration-key/ (default docs)")
    p.add_argument("--out", type=Path, required=True, help="the reader file to write (JSON)")
    p.add_argument("--hold-out", action="append", default=[], metavar="TEXT",
                   help="leave out, and score, every reading whose name contains TEXT (repeatable)")
    p.add_argument("--c", type=float, default=C, help=f"inverse L2 strength (default {C})")
    args = p.parse_args(argv)
    rows = load_readings(args.docs)
    held = [r for r in rows if any(t in r.reading for t in args.hold_out)]
    train = [r for r in rows if not any(t in r.reading for t in args.hold_out)]
    if args.hold_out and not held:
        raise SystemExit(f"--hold-out {' '.join(args.hold_out)}: no reading under {args.docs} matches")
    reader = fit(train, c=args.c)
    fit_info = dict(reader.fit)
    if held:
        fit_info["held_out"] = {"readings": sorted({r.reading for r in held}),
                                **held_out_scores(reader, held)}
    reader = LineReader(reader.weights, reader.bias, fit_info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reader.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in fit_info.items() if k != "readings"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
