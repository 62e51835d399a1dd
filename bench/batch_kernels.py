"""Which GGUF file type makes batching pay: raw llama_decode tokens/s per file type and batch.

The embedded SmolLM2-135M ships as Q4_1; it is also rewritten (llama.cpp's own quantizer,
bot/llm/requantize.py) as Q4_0, Q8_0 and F16 into --cache (default: a temporary folder, deleted
afterwards; nothing is written into the repository). For each file type and thread count, in a
fresh child process (one BatchedEngine, 12 sequences, its decode thread idle while the bench
drives the context):

- generation: tokens/s when one step decodes one new token for each of n sequences (n = 1, 4,
  8, 12), after a 128-token prompt each; "x12/1" is tokens/s at 12 over tokens/s at 1, what
  batching buys;
- prompt: tokens/s of one 128-token prompt chunk (what a new game's first turn costs);
- quality, against the file as shipped: the next-token distributions over a 128-token
  negotiation text, top-1 agreement and mean KL(shipped || this), with 1 thread; and the KL
  from F16 (the shipped Q4_1 weights dequantized exactly: Q4_1's own kernels also round the
  activations to 8 bits, so even the shipped file is not at KL 0 from it).

Each number is the best of --rounds rounds (the machine is shared; the best is the least
disturbed).

    .venv/bin/python bench/batch_kernels.py [--formats Q4_1,Q4_0,Q8_0,F16] [--threads 1,2]
        [--rounds 3] [--cache DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (1, 4, 8, 12)
STEPS = 24
PROMPT = 128
TEXT = ("Buyer: Hi! I saw your listing for the road bike. Is it still available? Seller: Yes, it is. "
        "It is a 2019 aluminium frame, new tires last spring, and it rides great. Buyer: What is "
        "the lowest you would take? I was thinking around $250 since the paint is scratched. "
        "Seller: I listed it at $400 and that is already fair for this model; I could do $370 if "
        "you pick it up today. Buyer: That is still more than my budget. Would you take $300 "
        "cash? Seller: Meet me at $340 and it is yours, with the lights and the lock included. ")


def child(args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp
    import numpy as np

    from bot.llm.batch_engine import BatchedEngine

    engine = BatchedEngine(args.path, n_slots=max(SIZES), n_ctx=1024, n_threads=args.threads[0])
    asyncio.run(engine.start())
    ctx, batch, mem = engine._ctx.ctx, engine._batch, engine._ctx.memory
    text = engine._model.tokenize(TEXT.encode() * 3, True, False)[:PROMPT]
    n_vocab = engine.n_vocab

    def decode(items: list[tuple[int, int, int]], logits: bool = True) -> None:
        batch.n_tokens = len(items)
        for i, (token, pos, seq) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits or i == len(items) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    out: dict[str, Any] = {"gen": {n: 0.0 for n in SIZES}, "prompt": 0.0}
    with engine._cond:  # the engine's thread is idle: the bench drives the context itself
        if args.logits:  # every position's next-token distribution over the text, sequence 0
            decode([(t, i, 0) for i, t in enumerate(text)])
            rows = [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                    for i in range(len(text))]
            np.save(args.logits, np.stack(rows).astype(np.float32))
        for seq in range(max(SIZES)):
            llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
            decode([(t, i, seq) for i, t in enumerate(text)], logits=False)
        for _ in range(args.rounds):
            llama_cpp.llama_memory_seq_rm(mem, 0, -1, -1)
            t0 = time.perf_counter()
            decode([(t, i, 0) for i, t in enumerate(text)], logits=False)
            out["prompt"] = max(out["prompt"], len(text) / (time.perf_counter() - t0))
            for n in SIZES:
                decode([(text[0], PROMPT, seq) for seq in range(n)])  # warm-up step
                t0 = time.perf_counter()
                for k in range(1, STEPS + 1):
                    decode([(text[k], PROMPT + k, seq) for seq in range(n)])
                out["gen"][n] = max(out["gen"][n], n * STEPS / (time.perf_counter() - t0))
                for seq in range(n):
                    llama_cpp.llama_memory_seq_rm(mem, seq, PROMPT, -1)
    engine.close()
    return out


def run_child(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def quality(reference: Path, other: Path) -> tuple[float, float]:
    import numpy as np

    a, b = np.load(reference).astype(np.float64), np.load(other).astype(np.float64)

    def log_softmax(x: Any) -> Any:
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    la, lb = log_softmax(a), log_softmax(b)
    top1 = float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
    kl = float((np.exp(la) * (la - lb)).sum(axis=1).mean())
    return top1, kl


def main(args: argparse.Namespace, cache: Path) -> int:
    from bot.llm.llamacpp import _install_log_capture
    from bot.llm.models import embedded_model_path, inspect_gguf
    from bot.llm.requantize import derived_gguf

    _install_log_capture()  # llama.cpp's quantizer log goes to Python logging, not the screen

    shipped = embedded_model_path()
    load = os.getloadavg()
    print(f"bench/batch_kernels.py on {os.cpu_count()} CPU(s), load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; best of {args.rounds} rounds; files in {cache}")
    files = {}
    for fmt in args.formats:
        t0 = time.perf_counter()
        files[fmt] = derived_gguf(inspect_gguf(shipped), fmt, home=cache, threads=max(args.threads))
        info = inspect_gguf(files[fmt], sha256=False)
        print(f"  {fmt:<5} {info.size_bytes / 2**20:6.1f} MiB  {info.quantization:<5}"
              f"{'(as shipped)' if files[fmt] == shipped else f'written in {time.perf_counter() - t0:.1f} s'}",
              flush=True)
    head = (f"{'type':<6}{'thr':>4}" + "".join(f"{f'gen n={n}':>10}" for n in SIZES)
            + f"{'x12/1':>7}{'prompt':>8}{'top-1':>7}{'KL':>9}")
    print("\ntokens/s (generation: one token for each of n sequences per llama_decode)")
    print(head)
    print("-" * len(head))
    reference = cache / f"logits-{args.formats[0]}.npy"
    exact = cache / "logits-F16.npy"  # the shipped weights dequantized, computed in F16
    done = []
    for threads in args.threads:
        for fmt, path in files.items():
            mine = cache / f"logits-{fmt}.npy"
            argv = ["--child", f"--path={path}", f"--threads={threads}", f"--rounds={args.rounds}"]
            if threads == min(args.threads):
                argv.append(f"--logits={mine}")
            r = run_child(argv)
            gen = {int(k): v for k, v in r["gen"].items()}
            line = (f"{fmt:<6}{threads:>4}" + "".join(f"{gen[n]:>10.1f}" for n in SIZES)
                    + f"{gen[12] / gen[1]:>7.2f}{r['prompt']:>8.1f}")
            if threads == min(args.threads) and reference.is_file():
                top1, kl = quality(reference, mine)
                line += f"{top1:>7.3f}{kl:>9.5f}"
                done.append((fmt, mine))
            print(line, flush=True)
    if exact.is_file():
        print("KL(F16 || type), F16 being the shipped weights exactly: "
              + ", ".join(f"{fmt} {quality(exact, mine)[1]:.5f}" for fmt, mine in done))
    print(f"quality: next-token distributions over {PROMPT} positions of a negotiation text; top-1 "
          f"agreement and KL against {args.formats[0]} (1 thread)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", type=lambda s: s.split(","), default=["Q4_1", "Q4_0", "Q8_0", "F16"],
                        help="file types, the first one the quality reference (default: as shipped)")
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", help="folder for the rewritten files (default: a temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--logits", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child:
        import logging

        logging.basicConfig(level=logging.ERROR)
        print(json.dumps(child(parsed)))
        sys.exit(0)
    if parsed.cache:
        sys.exit(main(parsed, Path(parsed.cache)))
    with tempfile.TemporaryDirectory(prefix="haggle-kernels-") as tmp:
        sys.exit(main(parsed, Path(tmp)))
