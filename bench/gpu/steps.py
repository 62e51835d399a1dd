"""The checks of bench/gpu/check.py, one per process: each writes {"ok": bool, ...} to --result.

    python bench/gpu/steps.py STEP --result FILE --work DIR --carry build/gpu-carry --device cuda

STEP is one of: probe, logits, negotiation, train_fit, train_merge, train_export, train_verify,
train_accelerate, train_qlora. With --device cpu (the CPU rehearsal) the same code runs on a
CPU-only build: llama.cpp is still asked for every layer on the GPU (n_gpu_layers=-1) and the
report says it could not (offload false), and training runs on the CPU in fp32.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

OFFLOAD_RE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
# top-1 next-token agreement required of each file, GPU against CPU. F32 runs the same math in
# another order: every position must agree. Q8_0: llama.cpp's CPU path quantizes activations to
# q8_0 and CUDA's mmvq to q8_1, so a near-tie can flip; 0.9 of the positions must agree.
MIN_AGREEMENT = {"F32": 1.0, "Q8_0": 0.9}
PROBE_MODULES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers",
                 "sentencepiece", "numpy", "gguf", "huggingface_hub", "yaml", "jinja2", "tqdm",
                 "diskcache", "packaging", "scikit_build_core", "aiosqlite", "discord",
                 "bitsandbytes", "llama_cpp", "matplotlib")


# ---------------------------------------------------------------------------- pure helpers


def buffer_lines(lines) -> list[str]:
    """llama.cpp's "CUDA0 model buffer size = ..." lines: where the weights and caches went."""
    return [line.strip() for line in lines if "buffer size" in line]


def reply_shape_problem(text: str) -> str | None:
    """Why ``text`` is not a JSON object of the reply schema's shape (None: it is).

    The grammar guarantees the shape; whether the content is usable (a positive price, words)
    is parse_reply's and the agent's business.
    """
    from bot.negotiation.prompts import MAX_UTTERANCE_CHARS, REPLY_ACTS

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    if not isinstance(obj, dict) or set(obj) != {"act", "price", "utterance"}:
        return f"keys {sorted(obj) if isinstance(obj, dict) else type(obj).__name__}"
    if obj["act"] not in {a.value for a in REPLY_ACTS}:
        return f"act {obj['act']!r} not in the schema"
    price = obj["price"]
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        return f"price {price!r} is neither a number nor null"
    utterance = obj["utterance"]
    if not isinstance(utterance, str) or not 1 <= len(utterance) <= MAX_UTTERANCE_CHARS:
        return "utterance is not a string of 1 to MAX_UTTERANCE_CHARS characters"
    return None


def offload_problem(offload: tuple[int, int] | None, supported: bool) -> str | None:
    """Why not every layer is on the GPU (None: all are)."""
    if not supported:
        return ("needs CUDA: this llama-cpp-python build is CPU-only "
                "(llama_supports_gpu_offload() is false), so no layer was offloaded")
    if offload is None:
        return "the load log has no 'offloaded N/M layers to GPU' line"
    if offload[0] != offload[1] or offload[0] == 0:
        return f"only {offload[0]} of {offload[1]} layers were offloaded"
    return None


def parse_offload(lines) -> tuple[int, int] | None:
    """(offloaded, total) from llama.cpp's load log ("offloaded 3/3 layers to GPU"), or None."""
    found = None
    for line in lines:
        m = OFFLOAD_RE.search(line)
        if m:
            found = (int(m.group(1)), int(m.group(2)))
    return found


def compare_logits(reference_top1, reference_last, got_top1, got_last) -> dict:
    """Agreement of two runs on one prompt: per-position top-1 and the last row's max |diff|."""
    import numpy as np

    if len(reference_top1) != len(got_top1):
        raise ValueError(f"positions differ: {len(reference_top1)} vs {len(got_top1)}")
    ref_last = np.asarray(reference_last, dtype=np.float64)
    last = np.asarray(got_last, dtype=np.float64)
    if ref_last.shape != last.shape:
        raise ValueError(f"logit rows differ in shape: {ref_last.shape} vs {last.shape}")
    agreed = sum(int(a == b) for a, b in zip(reference_top1, got_top1, strict=False))
    return {"positions": len(reference_top1), "top1_agreed": agreed,
            "max_abs_diff": float(np.max(np.abs(ref_last - last))),
            "logit_range": float(ref_last.max() - ref_last.min())}


def summarize(comparisons: list[dict]) -> dict:
    """Totals over prompts: positions, agreed, agreement, worst max |diff|."""
    positions = sum(c["positions"] for c in comparisons)
    agreed = sum(c["top1_agreed"] for c in comparisons)
    return {"positions": positions, "top1_agreed": agreed,
            "agreement": round(agreed / positions, 4) if positions else 0.0,
            "max_abs_diff": max((c["max_abs_diff"] for c in comparisons), default=None)}


def losses_fall(history: list[dict]) -> bool:
    """The last logged train loss is below the first."""
    losses = [h["loss"] for h in history if h.get("loss") is not None]
    return len(losses) >= 2 and losses[-1] < losses[0]


class LogLines(logging.Handler):
    """Keeps llama.cpp's load log (routed to logging by bot.llm.llamacpp)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def capture_native_log() -> LogLines:
    from bot.llm.llamacpp import _install_log_capture, native_log

    handler = LogLines()
    native_log.setLevel(logging.DEBUG)
    native_log.addHandler(handler)
    native_log.propagate = False
    _install_log_capture()
    return handler


# ---------------------------------------------------------------------------- steps


def step_probe(args) -> dict:
    modules = {}
    for name in PROBE_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        modules[name] = spec is not None
    versions = {}
    for dist in ("torch", "transformers", "peft", "accelerate", "gguf", "numpy",
                 "huggingface-hub", "llama_cpp_python", "bitsandbytes"):
        try:
            from importlib.metadata import version
            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - not installed is an answer here
            versions[dist] = None
    torch_info = None
    if modules["torch"]:
        import torch
        cuda = torch.cuda.is_available()
        torch_info = {"version": torch.__version__, "cuda_available": cuda,
                      "cuda_version": torch.version.cuda,
                      "device": torch.cuda.get_device_name(0) if cuda else None,
                      "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported())}
    missing = [m for m in ("torch", "transformers", "peft", "accelerate", "numpy")
               if not modules[m]]
    return {"ok": not missing, "python": sys.version.split()[0], "modules": modules,
            "versions": versions, "torch": torch_info, "missing_for_training": missing}


def _llama(path: Path, n_gpu_layers: int, n_ctx: int = 128):
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_gpu_layers=n_gpu_layers,
                 logits_all=True, n_threads=max(1, (os.cpu_count() or 2) // 2), verbose=False)


def _eval(llm, ids: list[int]):
    import numpy as np

    llm.reset()
    llm.eval(ids)
    scores = np.array(llm.scores[: len(ids)], dtype=np.float32)
    return scores.argmax(-1).tolist(), scores[-1]


def step_logits(args) -> dict:
    """Every layer offloaded; GPU logits against the carried CPU reference and this build's CPU
    path (n_gpu_layers=0), per model file, on the reference's token ids."""
    import llama_cpp
    import numpy as np

    carry = Path(args.carry)
    ref = json.loads((carry / "reference.json").read_text())
    ref_logits = np.load(carry / ref["logits"])
    log = capture_native_log()
    files, ok = {}, True
    offload_supported = bool(llama_cpp.llama_supports_gpu_offload())
    for file_type, meta in ref["models"].items():
        path = carry / "models" / meta["file"]
        start = len(log.lines)
        t0 = time.perf_counter()
        gpu = _llama(path, -1)
        load_s = time.perf_counter() - t0
        gpu_log = log.lines[start:]
        offload = parse_offload(gpu_log)
        cpu = _llama(path, 0)
        vs_ref, vs_cpu = [], []
        for i, prompt in enumerate(ref["prompts"]):
            top1, last = _eval(gpu, prompt["ids"])
            vs_ref.append(compare_logits(meta["top1"][i], ref_logits[f"{file_type}_{i}"],
                                         top1, last))
            cpu_top1, cpu_last = _eval(cpu, prompt["ids"])
            vs_cpu.append(compare_logits(cpu_top1, cpu_last, top1, last))
        gpu.close()
        cpu.close()
        need = MIN_AGREEMENT.get(file_type, 1.0)
        s_ref, s_cpu = summarize(vs_ref), summarize(vs_cpu)
        all_layers = offload is not None and offload[0] == offload[1] and offload[0] > 0
        file_ok = all_layers and s_ref["agreement"] >= need and s_cpu["agreement"] >= need
        ok = ok and file_ok
        files[file_type] = {"file": meta["file"], "offloaded": list(offload) if offload else None,
                            "buffers": buffer_lines(gpu_log),
                            "offload_problem": offload_problem(offload, offload_supported),
                            "all_layers_offloaded": all_layers, "load_seconds": round(load_s, 3),
                            "min_agreement": need, "vs_carried_cpu_reference": s_ref,
                            "vs_device_cpu_path": s_cpu, "ok": file_ok}
    return {"ok": ok, "llama_cpp_python": llama_cpp.__version__,
            "supports_gpu_offload": offload_supported, "files": files,
            "reference": {"build": ref["build"], "made": ref["made"]},
            "note": "vs_carried_cpu_reference: logits computed by bench/gpu/prepare.py with the "
                    "CPU build where it ran; vs_device_cpu_path: this build with n_gpu_layers=0"}


class Metered:
    """Wraps a backend and keeps every ChatResult (raw text, tokens, seconds)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.results = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def chat(self, *a, **kw):
        result = await self.inner.chat(*a, **kw)
        self.results.append(result)
        return result


async def _negotiate(args) -> dict:
    from bot.errors import TurnError
    from bot.llm.base import Sampling
    from bot.llm.llamacpp import LlamaCppBackend, gpu_offload_supported
    from bot.llm.models import ModelSpec
    from bot.negotiation.guard import violates_reservation
    from bot.negotiation.llm_agent import LLMAgent
    from bot.negotiation.prompts import parse_reply
    from bot.negotiation.runner import run_negotiation
    from bot.negotiation.scenario import Scenario

    model = Path(args.carry) / "models" / "tiny.F32.gguf"
    scenario = Scenario(id="gpu-check", title="Road bike, barely used", listing_price=300.0,
                        buyer_target=200.0, seller_target=300.0, buyer_reservation=260.0,
                        seller_reservation=210.0, description="A road bike in good condition.")
    log = capture_native_log()
    # as a [models.NAME] table with n_gpu_layers = -1 configures it, one instance per seat
    specs = [ModelSpec(name=f"gpu-{role}", path=str(model), n_ctx=2048, n_gpu_layers=-1, seed=7,
                       timeout_s=60.0) for role in ("buyer", "seller")]
    backends = [Metered(LlamaCppBackend.from_spec(spec)) for spec in specs]
    sampling = Sampling(temperature=0.7, max_tokens=200, seed=7)
    try:
        for b in backends:
            await b.load()
        offload = parse_offload(log.lines)
        buyer = LLMAgent("llm-buyer", backends[0], sampling=sampling)
        seller = LLMAgent("llm-seller", backends[1], sampling=sampling)
        t0 = time.perf_counter()
        record = await run_negotiation(scenario, buyer, seller, max_turns=15)
        wall = time.perf_counter() - t0
    finally:
        for b in backends:
            await b.aclose()
    results = [r for b in backends for r in b.results]
    shape_problems, unusable = [], []
    for r in results:
        problem = reply_shape_problem(r.text)
        if problem:
            shape_problems.append({"problem": problem, "text": r.text[:160]})
            continue
        try:
            parse_reply(r.text)
        except TurnError as exc:
            unusable.append({"problem": str(exc), "text": r.text[:160]})
    schema_valid = len(results) - len(shape_problems)
    violations = sum(violates_reservation(t, scenario, record.turns[:i])
                     for i, t in enumerate(record.turns))
    tokens = sum(r.completion_tokens or 0 for r in results)
    seconds = sum(r.seconds for r in results)
    all_layers = offload is not None and offload[0] == offload[1] and offload[0] > 0
    turns = [{"role": t.role.value, "act": t.act.value, "price": t.price,
              "utterance": t.utterance[:80], "repaired": t.repaired, "fallback": t.fallback}
             for t in record.turns]
    ok = (record.error is None and len(record.turns) > 0 and violations == 0 and results
          and schema_valid == len(results) and all_layers)
    return {"ok": bool(ok),
            "offloaded": list(offload) if offload else None, "all_layers_offloaded": all_layers,
            "offload_problem": offload_problem(offload, gpu_offload_supported()),
            "outcome": record.outcome.value, "deal_price": record.deal_price,
            "turns": len(record.turns), "model_calls": len(results),
            "schema_valid_replies": schema_valid, "not_schema_shaped": shape_problems,
            "schema_shaped_but_unusable": unusable, "reservation_violations": violations,
            "buffers": buffer_lines(log.lines),
            "repaired_turns": sum(t.repaired for t in record.turns),
            "fallback_turns": sum(t.fallback for t in record.turns),
            "completion_tokens": tokens, "seconds_in_llama": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
            "wall_seconds": round(wall, 3), "error": record.error, "dialogue": turns,
            "model": model.name,
            "note": "the tiny llama has random weights: its words are noise, but every reply is "
                    "grammar-constrained JSON and the guard checks every turn"}


def step_negotiation(args) -> dict:
    import asyncio

    return asyncio.run(_negotiate(args))


# ---- training: `haggle train` stages through the CLI, as a user runs them


def _train_flags(args, out: Path, *, base: str | None = None, steps: int = 8) -> list[str]:
    carry = Path(args.carry)
    flags = ["--role", "seller", "--out", str(out),
             "--base", base or str(carry / "models" / "tiny.F32.gguf"),
             "--examples", str(carry / "data" / "seller.jsonl"),
             "--max-steps", str(steps), "--batch-size", "4", "--max-seq-len", "128",
             "--set", "lora_r=8", "--set", "learning_rate=1e-2", "--set", "warmup_steps=0",
             "--set", "eval_every=4", "--set", "save_every=4", "--set", 'quant_types=["Q8_0"]',
             "--set", "verify_prompts=2"]
    if args.device == "cpu":
        flags += ["--threads", "1"]
    return flags


def _cli(args, stage: str, flags: list[str], *, launcher: list[str] | None = None,
         extra: list[str] = ()) -> tuple[int, float, str]:
    cmd = [*(launcher or [sys.executable]), "-m", "bot.cli", "train", stage, *flags, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    sys.stdout.write(f"$ {' '.join(cmd)}\n{res.stdout}\n{res.stderr}\n")
    return res.returncode, time.perf_counter() - t0, (res.stdout + res.stderr)[-2000:]


def _fit_summary(out: Path, expect_device: str) -> dict:
    fit = json.loads((out / "fit.json").read_text())
    history = fit.get("history", [])
    adapter = out / "adapter" / "adapter_model.safetensors"
    expect_dtype = "bfloat16" if expect_device == "cuda" else "float32"
    summary = {"device": fit.get("device"), "dtype": fit.get("dtype"),
               "first_loss": history[0]["loss"] if history else None,
               "final_train_loss": fit.get("final_train_loss"),
               "eval_loss_before": fit.get("eval_loss_before"),
               "eval_loss_after": fit.get("eval_loss_after"), "steps": fit.get("steps"),
               "processes": fit.get("processes"), "tokens_per_second": fit.get("tokens_per_second"),
               "adapter_written": adapter.is_file(),
               "adapter_bytes": adapter.stat().st_size if adapter.is_file() else None,
               "losses": [h["loss"] for h in history]}
    eval_falls = (summary["eval_loss_before"] is not None and summary["eval_loss_after"] is not None
                  and summary["eval_loss_after"] < summary["eval_loss_before"])
    summary["loss_falls"] = losses_fall(history) and eval_falls
    summary["ok"] = (summary["loss_falls"] and summary["adapter_written"]
                     and str(summary["device"]).startswith(expect_device)
                     and summary["dtype"] == expect_dtype)
    summary["expected"] = {"device": expect_device, "dtype": expect_dtype}
    return summary


def _plain(args) -> Path:
    return Path(args.work) / "train" / "plain"


def step_train_fit(args) -> dict:
    out = _plain(args)
    rc, seconds, text = _cli(args, "fit", _train_flags(args, out),
                             extra=["--device", args.device, "--fresh", "--no-progress"])
    if rc != 0:
        return {"ok": False, "rc": rc, "seconds": round(seconds, 1), "output_tail": text}
    return {"rc": rc, "cli_seconds": round(seconds, 1), **_fit_summary(out, args.device)}


def step_train_merge(args) -> dict:
    out = _plain(args)
    rc, seconds, text = _cli(args, "merge", _train_flags(args, out))
    source = out / "merged" / "source.json"
    info = json.loads(source.read_text()) if source.is_file() else {}
    ok = rc == 0 and (out / "merged" / "model.safetensors").is_file()
    return {"ok": ok, "rc": rc, "cli_seconds": round(seconds, 1),
            "merged_dtype": info.get("dtype"), "output_tail": None if ok else text}


def step_train_export(args) -> dict:
    out = _plain(args)
    rc, seconds, text = _cli(args, "export", _train_flags(args, out))
    files = {t: (out / f"{out.name}.{t}.gguf") for t in ("F16", "Q8_0")}
    sizes = {t: p.stat().st_size if p.is_file() else None for t, p in files.items()}
    ok = rc == 0 and all(sizes.values())
    return {"ok": ok, "rc": rc, "cli_seconds": round(seconds, 1), "files": sizes,
            "output_tail": None if ok else text}


def step_train_verify(args) -> dict:
    out = _plain(args)
    rc, seconds, text = _cli(args, "verify", _train_flags(args, out))
    manifest = out / "manifest.json"
    verdicts = json.loads(manifest.read_text()).get("verify", {}) if manifest.is_file() else {}
    return {"ok": rc == 0, "rc": rc, "cli_seconds": round(seconds, 1), "verify": verdicts,
            "output": text[-1200:]}


def step_train_accelerate(args) -> dict:
    """`accelerate launch --num_processes 1` runs the same fit; losses beside the plain run's."""
    out = Path(args.work) / "train" / "accelerate"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if args.device == "cpu":
        launcher.append("--cpu")
    rc, seconds, text = _cli(args, "fit", _train_flags(args, out), launcher=launcher,
                             extra=["--device", args.device, "--fresh", "--no-progress"])
    if rc != 0:
        return {"ok": False, "rc": rc, "seconds": round(seconds, 1), "output_tail": text}
    summary = _fit_summary(out, args.device)
    plain = _plain(args) / "fit.json"
    if plain.is_file():
        theirs = [h["loss"] for h in json.loads(plain.read_text())["history"]]
        ours = summary["losses"]
        summary["max_loss_diff_vs_plain"] = (max(abs(a - b) for a, b in zip(ours, theirs, strict=False))
                                             if len(ours) == len(theirs) else None)
    return {"rc": rc, "cli_seconds": round(seconds, 1), **summary}


def step_train_qlora(args) -> dict:
    """4-bit QLoRA on the merged checkpoint where bitsandbytes is installed; else its guard."""
    out = Path(args.work) / "train" / "qlora"
    base = _plain(args) / "merged"
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    flags = _train_flags(args, out, base=str(base), steps=4) + ["--set", "load_in_4bit=true"]
    rc, seconds, text = _cli(args, "fit", flags,
                             extra=["--device", args.device, "--fresh", "--no-progress"])
    if args.device == "cuda" and has_bnb:
        if rc != 0:
            return {"ok": False, "rc": rc, "output_tail": text}
        summary = _fit_summary(out, "cuda")
        return {"rc": rc, "cli_seconds": round(seconds, 1), "bitsandbytes": True, **summary}
    # No bitsandbytes (or no GPU): the fit must refuse with a message that says what to do.
    expected = "needs a CUDA GPU" if args.device == "cpu" else "needs bitsandbytes"
    return {"ok": rc != 0 and expected in text, "rc": rc, "bitsandbytes": has_bnb,
            "guard_expected": expected, "output_tail": text[-600:],
            "note": "QLoRA itself not run: " + ("no CUDA device" if args.device == "cpu"
                                                else "bitsandbytes is not installed")}


STEPS = {"probe": step_probe, "logits": step_logits, "negotiation": step_negotiation,
         "train_fit": step_train_fit, "train_merge": step_train_merge,
         "train_export": step_train_export, "train_verify": step_train_verify,
         "train_accelerate": step_train_accelerate, "train_qlora": step_train_qlora}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=sorted(STEPS))
    p.add_argument("--result", required=True)
    p.add_argument("--work", default=str(REPO / "build" / "gpu-work" / "gpu"))
    p.add_argument("--carry", default=str(REPO / "build" / "gpu-carry"))
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = p.parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = STEPS[args.step](args)
    Path(args.result).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
