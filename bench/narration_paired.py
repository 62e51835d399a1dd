"""Two narrators read blind side by side: the same moves, each one's words.

bench/narration_quality.py plays the same seeded scenarios for every variant, and the policy
(not the model) picks every move, so two variants' turn logs (OUT/NAME.jsonl) hold the same
moves at the same places and differ only in the words. Read through separate samples, each
variant's 75 model lines are another draw of moves, and that draw alone moves a variant's
sensible share by about 10 points from seed to seed. This bench reads pairs instead: every move
both variants narrated (neither a template, the words not the same), both lines in one shuffled
sample beside people's lines, so one reader judges both narrators on the same moves:

    .venv/bin/python bench/narration_paired.py --out runs/paired-s13 \\
        --a shipped=runs/s13/shipped.jsonl --b more=runs/s13-more/more.jsonl --humans runs/s13
    # one blind reader per copy of OUT/sample.md, answers as narration_quality.py's, then
    .venv/bin/python bench/narration_paired.py --score runs/paired-s13/judged-r1.jsonl ...

The key marks each line's variant (kind "model", so bench/narration_readings.py pools the
readings kept in docs/ with the others). ``--humans DIR`` takes people's lines from an earlier
sample (DIR/sample.jsonl + DIR/key.json, kind human), ``--humans-per`` of them (default 40).
``--score`` is repeatable; each answer file is scored against the key.json in its own folder,
and all of them are pooled: per variant the share of sensible lines and the mean natural score,
the pairs where only one of the two was sensible with the exact two-sided sign test on them,
and natural wins / ties / losses.
Pure Python, no model: seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.narration_quality import write_sample_files  # noqa: E402
from bot.negotiation.prompts import money  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pair_rows(a_rows: list[dict], b_rows: list[dict]) -> tuple[list[tuple[dict, dict]], int]:
    """The moves both logs narrated, as (a row, b row), and how many had the same words.

    The logs must be of the same games: same scenarios, and at each (scenario, turn) the same
    speaker, act and price; anything else is an error, since the pairs would not compare words."""
    b_at = {(r["scenario"], r["index"]): r for r in b_rows}
    if len(b_at) != len(a_rows) or any((r["scenario"], r["index"]) not in b_at for r in a_rows):
        raise SystemExit("the two turn logs are not of the same games (other scenarios or turns): "
                         "play both variants with the same --scenarios and --seed")
    pairs, same = [], 0
    for a in a_rows:
        b = b_at[(a["scenario"], a["index"])]
        if (a["role"], a["act"], a["price"]) != (b["role"], b["act"], b["price"]):
            raise SystemExit(f"{a['scenario']} turn {a['index']}: the moves differ "
                             f"({a['role']} {a['act']} {a['price']} vs {b['role']} {b['act']} {b['price']}); "
                             "a pair must be the same move in other words")
        if a["fallback"] or b["fallback"]:
            continue
        if a["line"].strip() == b["line"].strip():
            same += 1
            continue
        pairs.append((a, b))
    return pairs, same


def human_lines(folder: Path) -> list[dict]:
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    return [s for s in read_jsonl(folder / "sample.jsonl") if key[s["id"]]["kind"] == "human"]


def build(out: Path, a: tuple[str, Path], b: tuple[str, Path], humans: Path | None,
          humans_per: int, seed: int) -> None:
    (a_name, a_path), (b_name, b_path) = a, b
    if a_name == b_name:
        raise SystemExit("--a and --b need two names")
    pairs, same = pair_rows(read_jsonl(a_path), read_jsonl(b_path))
    rng = random.Random(seed)
    entries = []  # (key entry, sample entry without id)
    for n, (ra, rb) in enumerate(pairs):
        for name, r in ((a_name, ra), (b_name, rb)):
            entries.append(({"kind": "model", "variant": name, "pair": n, "scenario": r["scenario"],
                             "index": r["index"], "rephrased": bool(r.get("repaired"))},
                            {"item": r["item"], "listing": money(r["listing"]), "speaker": r["role"],
                             "previous": r["previous"], "line": r["line"]}))
    people = human_lines(humans) if humans is not None else []
    rng.shuffle(people)
    for s in people[:humans_per]:
        entries.append(({"kind": "human"}, {k: s[k] for k in ("item", "listing", "speaker", "previous", "line")}))
    rng.shuffle(entries)
    write_sample_files(out, [(k, s) for k, s in entries])
    print(f"{len(pairs)} pairs ({same} moves said in the same words by both, left out), "
          f"{min(len(people), humans_per)} people's lines")


def sign_test(only_a: int, only_b: int) -> float:
    """Exact two-sided binomial sign test on the discordant pairs (p = 1 with none)."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def score(judged_paths: list[Path]) -> dict:
    by_pair: dict[tuple[str, int], dict[str, dict]] = {}
    kinds: dict[str, list[dict]] = {}
    for path in judged_paths:
        key = json.loads((path.parent / "key.json").read_text(encoding="utf-8"))
        for j in read_jsonl(path):
            k = key[j["id"]]
            kinds.setdefault(k.get("variant", k["kind"]), []).append(j)
            if "pair" in k:
                by_pair.setdefault((str(path), k["pair"]), {})[k["variant"]] = j
    names = sorted({n for p in by_pair.values() for n in p})
    if len(names) != 2:
        raise SystemExit(f"the answers hold variants {names}: a paired reading needs exactly two")
    a, b = names
    full = [p for p in by_pair.values() if len(p) == 2]
    only_a = sum(bool(p[a]["sensible"]) and not p[b]["sensible"] for p in full)
    only_b = sum(bool(p[b]["sensible"]) and not p[a]["sensible"] for p in full)
    result = {
        "pairs": len(full),
        "kinds": {n: {"lines": len(js), "sensible": sum(bool(j["sensible"]) for j in js) / len(js),
                      "natural": sum(j["natural"] for j in js) / len(js)} for n, js in kinds.items()},
        "both_sensible": sum(bool(p[a]["sensible"]) and bool(p[b]["sensible"]) for p in full),
        "neither_sensible": sum(not p[a]["sensible"] and not p[b]["sensible"] for p in full),
        f"only_{a}": only_a, f"only_{b}": only_b, "sign_test_p": sign_test(only_a, only_b),
        f"natural_{b}_higher": sum(p[b]["natural"] > p[a]["natural"] for p in full),
        f"natural_{a}_higher": sum(p[a]["natural"] > p[b]["natural"] for p in full),
        "natural_tied": sum(p[a]["natural"] == p[b]["natural"] for p in full),
        "natural_sign_test_p": sign_test(sum(p[a]["natural"] > p[b]["natural"] for p in full),
                                         sum(p[b]["natural"] > p[a]["natural"] for p in full)),
    }
    return result


def print_score(result: dict) -> None:
    print(f"{'kind':10s} {'lines':>5s} {'sensible':>9s} {'natural':>8s}")
    for name, k in sorted(result["kinds"].items()):
        print(f"{name:10s} {k['lines']:5d} {k['sensible']:9.0%} {k['natural']:8.2f}")
    print(f"\n{result['pairs']} pairs read in full:")
    for name, value in result.items():
        if name not in ("kinds", "pairs"):
            print(f"  {name:24s} {value:.3f}" if isinstance(value, float) else f"  {name:24s} {value}")


def named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=TURNS.jsonl")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="the folder the paired sample and its key go to")
    ap.add_argument("--a", type=named_path, metavar="NAME=TURNS.jsonl")
    ap.add_argument("--b", type=named_path, metavar="NAME=TURNS.jsonl")
    ap.add_argument("--humans", type=Path, default=None, metavar="SAMPLE_DIR")
    ap.add_argument("--humans-per", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", type=Path, action="append", default=[], metavar="JUDGED.jsonl")
    args = ap.parse_args(argv)
    if args.score:
        print_score(score(args.score))
        return 0
    if args.out is None or args.a is None or args.b is None:
        ap.error("building a sample needs --out, --a and --b (or --score to score one)")
    build(args.out, args.a, args.b, args.humans, args.humans_per, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
