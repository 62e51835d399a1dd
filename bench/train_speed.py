"""LoRA training speed and peak memory on the embedded SmolLM2-135M, two batch shapes side by side.

    .venv/bin/python bench/train_speed.py [--steps 4] [--seq 256] [--threads N]

Each shape runs in its own subprocess, so its peak RSS (getrusage ru_maxrss) is its own:
  wide:  batch 4 x grad_accum 1   (DESIGN.md's measured setup: batch 4 x 256)
  accum: batch 1 x grad_accum 4   (the same tokens per optimizer step, a quarter of the activations)
Printed: training tokens/s (non-padding tokens through forward+backward, evals and model loading
excluded), peak RSS, and the ratios wide/accum. The chat examples are synthetic negotiation
dialogues long enough to fill --seq tokens; only their length matters here.

The load average is printed before and after: on a machine shared with busy processes torch's
OpenMP threads wait on each other, and --threads 1 can be several times faster than the default.
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


def run_one(shape: str, steps: int, seq: int, threads: int | None) -> dict:
    """Train ``steps`` steps in this process and report speed and peak memory."""
    from training.config import TrainingConfig
    from training.fit import fit

    batch, accum = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
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
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--one", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.seq, args.threads)))
        return 0

    load_before = os.getloadavg()
    rows = {}
    for shape in SHAPES:
        extra = ["--threads", str(args.threads)] if args.threads else []
        proc = subprocess.run([sys.executable, __file__, "--one", shape, "--steps",
                               str(args.steps), "--seq", str(args.seq), *extra],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rows[shape] = json.loads(proc.stdout.strip().splitlines()[-1])
    load_after = os.getloadavg()
    print(f"LoRA r=32 on q/k/v/o, SmolLM2-135M (embedded), seq {args.seq}, {args.steps} steps, "
          f"{rows['wide']['threads']} torch threads on {os.cpu_count()} cores; 1-min load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{'shape':<8}{'batch x accum':>15}{'tokens':>9}{'seconds':>10}{'tokens/s':>10}"
          f"{'peak RSS MiB':>14}")
    for r in rows.values():
        print(f"{r['shape']:<8}{str(r['batch']) + ' x ' + str(r['grad_accum']):>15}"
              f"{r['tokens']:>9}{r['seconds']:>10.1f}{r['tokens_per_s']:>10.1f}"
              f"{r['peak_rss_mib']:>14.0f}")
    wide, accum = rows["wide"], rows["accum"]
    print(f"ratio wide/accum: speed {wide['tokens_per_s'] / accum['tokens_per_s']:.2f}x, "
          f"peak RSS {wide['peak_rss_mib'] / accum['peak_rss_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
