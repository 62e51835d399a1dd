"""LoRA training speed and peak memory on the embedded SmolLM2-135M, batch shapes and thread
counts side by side.

    .venv/bin/python bench/train_speed.py [--steps 4] [--seq 256] [--threads 1,2]
    .venv/bin/python bench/train_speed.py --examples adapters/seller/data/seller.jsonl \\
        --batch 2 --seq 1024 --threads 1,2 --only run        # a real run's settings

Each (shape, threads) runs in its own subprocess, so its peak RSS (getrusage ru_maxrss) is its own:
  wide:  batch 4 x grad_accum 1   (the first measured setup: batch 4 x 256), synthetic dialogues
  accum: batch 1 x grad_accum 4   (the same tokens per optimizer step, a quarter of the activations)
  run:   --batch x --accum on the chat examples of --examples (what `haggle train fit` will see:
         real lengths, truncated at --seq), shown when --examples is given
Printed: training tokens/s (non-padding tokens through forward+backward, evals and model loading
excluded), seconds per optimizer step, peak RSS, and the ratios wide/accum and threads A/B.
Synthetic dialogues are long enough to fill --seq tokens; only their length matters there.

The load average is printed before and after: on a machine shared with busy processes torch's
OpenMP threads wait on each other, and 1 thread can be several times faster than 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = {"wide": (4, 1), "accum": (1, 4)}


def synthetic_examples(n: int) -> list[dict]:
    items = ["road bike", "sofa", "phone", "desk lamp", "camera", "guitar", "bookshelf", "tent"]
    out = []
    for i in range(n):
        item, price = items[i % len(items)], 120 + 17 * i
        messages = [{"role": "system", "content": f"You are selling a used {item} listed at "
                     f"${price}. Negotiate politely, never go below ${int(price * 0.7)}."}]
        for turn in range(6):
            offer = int(price * (0.55 + 0.04 * turn))
            messages.append({"role": "user", "content": f"I have looked at the {item} and I like "
                             f"it, but ${offer} is what I can pay today. Could you accept that?"})
            messages.append({"role": "assistant", "content": f"Thanks for the offer. The {item} "
                             f"is in great shape, so ${int(price * (0.95 - 0.03 * turn))} is the "
                             "best I can do right now."})
        out.append({"messages": messages})
    return out


def run_one(shape: str, steps: int, seq: int, threads: int | None, batch: int, accum: int,
            examples: str | None) -> dict:
    """Train ``steps`` steps in this process and report speed and peak memory."""
    from training.config import TrainingConfig
    from training.fit import fit

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        if shape == "run":
            # The examples the run will train on, in the fit's own seeded order.
            data.write_text(Path(examples).read_text(encoding="utf-8"), encoding="utf-8")
        else:
            data.write_text("".join(json.dumps(e) + "\n" for e in synthetic_examples(32)))
        cfg = TrainingConfig(base="embedded", batch_size=batch, grad_accum=accum, max_steps=steps,
                             max_seq_len=seq, warmup_steps=0, eval_fraction=0.0,
                             eval_every=steps, save_every=steps)
        result = fit(cfg, data, Path(tmp) / "out", progress=False, threads=threads)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"shape": shape, "batch": batch, "grad_accum": accum, "steps": steps,
            "tokens": result.input_tokens, "seconds": result.train_seconds,
            "tokens_per_s": result.tokens_per_second, "peak_rss_mib": peak_kib / 1024,
            "threads": torch_threads()}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256, help="max_seq_len (tokens per example)")
    parser.add_argument("--threads", default=None,
                        help="torch CPU threads, or a comma list to compare (default: torch's choice)")
    parser.add_argument("--examples", help="chat-example JSONL of a real run (adds shape 'run')")
    parser.add_argument("--batch", type=int, default=4, help="batch size of shape 'run'")
    parser.add_argument("--accum", type=int, default=1, help="grad_accum of shape 'run'")
    parser.add_argument("--only", help="comma list of shapes to run (wide, accum, run)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        shape, threads = args.one.split(":")
        batch, accum = (args.batch, args.accum) if shape == "run" else SHAPES[shape]
        print(json.dumps(run_one(shape, args.steps, args.seq, int(threads) or None, batch, accum,
                                 args.examples)))
        return 0

    shapes = list(SHAPES) + (["run"] if args.examples else [])
    if args.only:
        wanted = args.only.split(",")
        unknown = [s for s in wanted if s not in shapes]
        if unknown:
            parser.error(f"--only {','.join(unknown)}: not among the shapes {', '.join(shapes)} "
                         "('run' needs --examples)")
        shapes = [s for s in shapes if s in wanted]
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [0]

    load_before = os.getloadavg()
    rows = []
    for shape in shapes:
        for threads in thread_counts:
            extra = ["--examples", args.examples] if args.examples else []
            proc = subprocess.run([sys.executable, __file__, "--one", f"{shape}:{threads}",
                                   "--steps", str(args.steps), "--seq", str(args.seq),
                                   "--batch", str(args.batch), "--accum", str(args.accum), *extra],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    print(f"LoRA r=32 on q/k/v/o, SmolLM2-135M (embedded), max_seq_len {args.seq}, {args.steps} "
          f"steps, {os.cpu_count()} cores; 1-min load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print(f"{'shape':<8}{'batch x accum':>15}{'threads':>9}{'tokens':>9}{'seconds':>10}"
          f"{'s/step':>9}{'tokens/s':>10}{'peak RSS MiB':>14}")
    for r in rows:
        print(f"{r['shape']:<8}{str(r['batch']) + ' x ' + str(r['grad_accum']):>15}"
              f"{r['threads']:>9}{r['tokens']:>9}{r['seconds']:>10.1f}"
              f"{r['seconds'] / r['steps']:>9.2f}{r['tokens_per_s']:>10.1f}"
              f"{r['peak_rss_mib']:>14.0f}")
    by = {(r["shape"], r["threads"]): r for r in rows}
    for threads in sorted({r["threads"] for r in rows}):
        wide, accum = by.get(("wide", threads)), by.get(("accum", threads))
        if wide and accum:
            print(f"ratio wide/accum ({threads} threads): speed "
                  f"{wide['tokens_per_s'] / accum['tokens_per_s']:.2f}x, peak RSS "
                  f"{wide['peak_rss_mib'] / accum['peak_rss_mib']:.2f}x")
    counts = sorted({r["threads"] for r in rows})
    if len(counts) > 1:
        for shape in shapes:
            first, last = by.get((shape, counts[0])), by.get((shape, counts[-1]))
            if first and last:
                print(f"ratio {counts[-1]}/{counts[0]} threads ({shape}): speed "
                      f"{last['tokens_per_s'] / first['tokens_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
