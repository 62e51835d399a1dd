"""Prepare, on a machine with PyPI, everything the GPU check (bench/gpu/check.py) carries to a
device that has no network: a trimmed llama-cpp-python source tree, pure-Python wheels, the
tiny llama GGUF (F32 and Q8_0), chat examples to fit on, and CPU reference logits.

    .venv/bin/python bench/gpu/prepare.py            # writes build/gpu-carry/ (git-ignored)
    .venv/bin/python bench/gpu/prepare.py --check    # only re-measure and check what is there

Why each piece (see docs/gpu.md):
- llama-cpp-python's 0.3.36 sdist is 76.6 MB (217 MB unpacked, a .git folder and llama.cpp's
  test vocab files, docs and every GPU backend included), over the device's 64 MiB of carried
  tree. ``trim_tree`` keeps what a CUDA + CPU build reads (CMake files, ggml core, ggml-cpu,
  ggml-cuda, llama's src/common/vendor/include, tools/mtmd for LLAVA_BUILD) and drops the rest;
  the result travels as one .tar.gz.
- The device image has torch, transformers, peft and accelerate but not necessarily haggle's
  other dependencies: ``WHEELS`` are the pure-Python ones the check needs (gguf for export and
  transformers' GGUF reader, diskcache for llama-cpp-python, scikit-build-core and pathspec to
  build it without build isolation, aiosqlite), pinned to this venv's versions.
- The tiny llama (training/tiny.py) borrows the embedded SmolLM2 GGUF's tokenizer; that model
  is 93 MB and does not travel, so the tiny GGUF is written here.
- ``reference.json`` / ``reference_logits.npz``: this CPU build's next-token logits on fixed
  token ids, the yardstick the CUDA build's logits are compared with on the device.

Runs with the haggle venv (llama-cpp-python CPU build, gguf, numpy); 1 llama.cpp thread.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CARRY = REPO / "build" / "gpu-carry"
DOWNLOADS = REPO / "build" / "gpu-dl"
LIMIT_MIB = 64  # the device's carried working tree, all of it
LLAMA_CPP_VERSION = "0.3.36"
SDIST = f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
TRIMMED = f"llama_cpp_python-{LLAMA_CPP_VERSION}-trimmed.tar.gz"
SRC_DIR = f"llama_cpp_python-{LLAMA_CPP_VERSION}"  # the folder inside both archives

# Pure-Python wheels the device may lack; pinned to this venv's versions where installed.
WHEELS = ("gguf", "aiosqlite", "diskcache", "scikit-build-core", "pathspec", "packaging")
WHEEL_FALLBACK_PINS = {"scikit-build-core": "0.11.6", "pathspec": "0.12.1", "packaging": "26.0"}

# ---------------------------------------------------------------------------- trimming

# Relative to the sdist root. Whole entries removed; globs allowed.
TRIM_TOP = (".git", ".github", "docker", "docs", "examples", "tests", "scripts", "mkdocs.yml",
            ".readthedocs.yaml", ".dockerignore", "CHANGELOG.md", "CONTRIBUTING.md")
LLAMA = "vendor/llama.cpp"
# vendor/llama.cpp keeps only these top-level entries (everything else: docs, models with the
# ggml-vocab-* test files, media, tests, examples, benches, tools but mtmd, python converters).
LLAMA_KEEP = ("CMakeLists.txt", "LICENSE", "cmake", "common", "ggml", "include", "licenses",
              "src", "tools", "vendor")
LLAMA_TOOLS_KEEP = ("mtmd",)  # LLAVA_BUILD (llama-cpp-python's default ON) adds tools/mtmd
# ggml/src backends kept: the CPU backend (always built) and CUDA; the rest are only added by
# ggml_add_backend() when their GGML_<NAME> option is ON (ggml/src/CMakeLists.txt).
GGML_BACKENDS_KEEP = ("ggml-cpu", "ggml-cuda", "ggml-blas", "ggml-rpc")

# What the CUDA build reads; checked after trimming (and by tests/test_gpu_check.py).
REQUIRED = (
    "CMakeLists.txt", "pyproject.toml", "README.md", "llama_cpp/__init__.py", "llama_cpp/llama.py",
    f"{LLAMA}/CMakeLists.txt", f"{LLAMA}/LICENSE", f"{LLAMA}/cmake/build-info.cmake",
    f"{LLAMA}/cmake/common.cmake", f"{LLAMA}/cmake/license.cmake", f"{LLAMA}/include/llama.h",
    f"{LLAMA}/src/CMakeLists.txt", f"{LLAMA}/src/models", f"{LLAMA}/common/CMakeLists.txt",
    f"{LLAMA}/vendor/CMakeLists.txt", f"{LLAMA}/tools/mtmd/CMakeLists.txt",
    f"{LLAMA}/ggml/CMakeLists.txt", f"{LLAMA}/ggml/cmake", f"{LLAMA}/ggml/include/ggml.h",
    f"{LLAMA}/ggml/src/CMakeLists.txt", f"{LLAMA}/ggml/src/ggml-cpu/CMakeLists.txt",
    f"{LLAMA}/ggml/src/ggml-cuda/CMakeLists.txt", f"{LLAMA}/ggml/src/ggml-cuda/ggml-cuda.cu",
)
# What must be gone (the bulk of the sdist).
MUST_BE_GONE = (".git", f"{LLAMA}/models", f"{LLAMA}/docs", f"{LLAMA}/tests",
                f"{LLAMA}/examples", f"{LLAMA}/media", f"{LLAMA}/ggml/src/ggml-vulkan",
                f"{LLAMA}/ggml/src/ggml-metal", f"{LLAMA}/ggml/src/ggml-sycl")


def _remove(path: Path) -> int:
    """Delete a file or folder; the bytes it held."""
    if not path.exists() and not path.is_symlink():
        return 0
    if path.is_dir() and not path.is_symlink():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        shutil.rmtree(path)
        return size
    size = path.lstat().st_size
    path.unlink()
    return size


def trim_tree(root: Path) -> dict:
    """Trim an unpacked llama-cpp-python sdist at ``root`` in place to what a CUDA build needs.

    Returns {"removed_bytes": ..., "removed": [relative paths]}.
    """
    removed: list[str] = []
    total = 0

    def drop(path: Path) -> None:
        nonlocal total
        total += _remove(path)
        removed.append(str(path.relative_to(root)))

    for pattern in TRIM_TOP:
        for path in sorted(root.glob(pattern)):
            drop(path)
    llama = root / LLAMA
    if llama.is_dir():
        for entry in sorted(llama.iterdir()):
            if entry.name not in LLAMA_KEEP:
                drop(entry)
        tools = llama / "tools"
        if tools.is_dir():
            for entry in sorted(tools.iterdir()):
                if entry.name not in LLAMA_TOOLS_KEEP:
                    drop(entry)
        ggml_src = llama / "ggml" / "src"
        if ggml_src.is_dir():
            for entry in sorted(ggml_src.iterdir()):
                if entry.is_dir() and entry.name.startswith("ggml-") and \
                        entry.name not in GGML_BACKENDS_KEEP:
                    drop(entry)
    return {"removed_bytes": total, "removed": removed}


def check_trimmed(root: Path) -> list[str]:
    """Problems with a trimmed tree: required paths missing, bulk still present (empty: fine)."""
    problems = [f"missing {p}" for p in REQUIRED if not (root / p).exists()]
    problems += [f"still present {p}" for p in MUST_BE_GONE if (root / p).exists()]
    return problems


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0  # the same inputs give the same archive
    return info


def make_trimmed_archive(sdist: Path, out: Path) -> dict:
    """Unpack ``sdist``, trim it, check it and pack it as ``out`` (.tar.gz); a summary."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / SRC_DIR
        before = tree_bytes(root)
        trimmed = trim_tree(root)
        problems = check_trimmed(root)
        if problems:
            raise SystemExit(f"trimmed tree is not buildable: {problems}")
        after = tree_bytes(root)
        partial = out.with_name(out.name + ".partial")
        with gzip.GzipFile(partial, "wb", compresslevel=9, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w") as tar:
            tar.add(root, arcname=SRC_DIR, filter=_tar_filter)
        partial.rename(out)
    return {"unpacked_bytes_before": before, "unpacked_bytes_after": after,
            "removed_entries": len(trimmed["removed"]), "archive_bytes": out.stat().st_size}


# ---------------------------------------------------------------------------- downloads


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def download_sdist() -> Path:
    path = DOWNLOADS / SDIST
    if not path.is_file():
        DOWNLOADS.mkdir(parents=True, exist_ok=True)
        pip("download", "--no-deps", "--no-binary", ":all:",
            f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", str(DOWNLOADS))
    return path


def wheel_pins() -> dict[str, str]:
    pins = {}
    for name in WHEELS:
        try:
            pins[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pins[name] = WHEEL_FALLBACK_PINS[name]
    return pins


def download_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    pins = wheel_pins()
    for old in dest.glob("*.whl"):
        old.unlink()
    pip("download", "--no-deps", "--only-binary", ":all:", "--python-version", "3.11",
        "--implementation", "py", "--abi", "none", "--platform", "any", "-d", str(dest),
        *(f"{n}=={v}" for n, v in pins.items()))
    wheels = sorted(dest.glob("*.whl"))
    bad = [w.name for w in wheels if not w.name.endswith("-py3-none-any.whl")]
    if bad:
        raise SystemExit(f"not pure-Python wheels: {bad}")
    return wheels


# ---------------------------------------------------------------------------- model + data

# Fixed prompts for the logits check: plain text and one chat, tokenized by llama.cpp here; the
# device evaluates the very token ids, so tokenizer differences cannot enter the comparison.
LOGIT_TEXTS = (
    "The capital of France is",
    "A used bicycle in good condition usually sells for about",
    "Seller: I can do $35 for the lamp. Buyer: Would you take $28 if I pick it up today?",
)


def write_models(models: Path) -> dict[str, Path]:
    import llama_cpp

    from training.tiny import write_tiny_llama_gguf

    models.mkdir(parents=True, exist_ok=True)
    f32 = write_tiny_llama_gguf(models / "tiny.F32.gguf")
    q8 = models / "tiny.Q8_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(f32).encode(), str(q8).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc}) for {q8}")
    return {"F32": f32, "Q8_0": q8}


def write_examples(data: Path) -> dict[str, Path]:
    """Seller chat examples to fit on (and a held-out file), as the training tests use."""
    from tests.tiny_training import write_examples as tiny_examples  # the tests' own examples

    data.mkdir(parents=True, exist_ok=True)
    return {"train": tiny_examples(data / "seller.jsonl", 24),
            "eval": tiny_examples(data / "seller.eval.jsonl", 4)}


def cpu_reference(models: dict[str, Path], out_json: Path, out_npz: Path) -> dict:
    """This CPU build's logits on LOGIT_TEXTS for each model: per-position top-1 and last row."""
    import llama_cpp
    import numpy as np

    from bot.llm.llamacpp import gpu_offload_supported

    first = llama_cpp.Llama(model_path=str(models["F32"]), n_ctx=128, n_gpu_layers=0,
                            n_threads=1, vocab_only=True, verbose=False)
    prompts = [{"text": t, "ids": first.tokenize(t.encode(), add_bos=True, special=False)}
               for t in LOGIT_TEXTS]
    first.close()
    arrays: dict[str, np.ndarray] = {}
    files = {}
    for file_type, path in models.items():
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, n_gpu_layers=0,
                              n_threads=1, logits_all=True, verbose=False)
        tops = []
        for i, p in enumerate(prompts):
            llm.reset()
            llm.eval(p["ids"])
            scores = np.array(llm.scores[: len(p["ids"])], dtype=np.float32)
            tops.append(scores.argmax(-1).tolist())
            arrays[f"{file_type}_{i}"] = scores[-1]
        llm.close()
        files[file_type] = {"file": path.name, "sha256": sha256(path), "top1": tops}
    np.savez_compressed(out_npz, **arrays)
    ref = {"llama_cpp_python": llama_cpp.__version__, "gpu_offload": gpu_offload_supported(),
           "build": "CPU (haggle venv, CMAKE_ARGS -DGGML_NATIVE=OFF ...)", "n_threads": 1,
           "made": datetime.now(UTC).isoformat(timespec="seconds"), "prompts": prompts,
           "models": files, "logits": out_npz.name}
    out_json.write_text(json.dumps(ref, indent=1) + "\n", encoding="utf-8")
    return ref


# ---------------------------------------------------------------------------- sizes


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tracked_bytes() -> tuple[int, int]:
    """(bytes, files) of the tracked and untracked-not-ignored files: the tree the device gets."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    names = [n for n in out.decode().split("\0") if n]
    return sum((REPO / n).stat().st_size for n in names if (REPO / n).is_file()), len(names)


def sizes() -> dict:
    tree, n_files = tracked_bytes()
    carry = {str(p.relative_to(CARRY)): p.stat().st_size for p in sorted(CARRY.rglob("*"))
             if p.is_file()}
    total = tree + sum(carry.values())
    return {"tree_bytes": tree, "tree_files": n_files, "carry_bytes": sum(carry.values()),
            "carry_files": carry, "total_bytes": total, "total_mib": round(total / 2**20, 2),
            "limit_mib": LIMIT_MIB, "fits": total < LIMIT_MIB * 2**20}


def print_sizes(s: dict) -> None:
    print(f"{'carried file':<58}{'MiB':>8}")
    for name, size in s["carry_files"].items():
        print(f"  build/gpu-carry/{name:<40}{size / 2**20:>8.2f}")
    print(f"  repository tree ({s['tree_files']} files){'':<21}{s['tree_bytes'] / 2**20:>8.2f}")
    print(f"total carried: {s['total_mib']:.2f} MiB of {LIMIT_MIB} MiB "
          f"({'fits' if s['fits'] else 'OVER THE LIMIT'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only measure what is there")
    args = parser.parse_args(argv)
    manifest_path = CARRY / "manifest.json"
    if args.check:
        s = sizes()
        print_sizes(s)
        return 0 if s["fits"] else 1
    t0 = time.perf_counter()
    CARRY.mkdir(parents=True, exist_ok=True)
    sdist = download_sdist()
    print(f"sdist: {sdist} ({sdist.stat().st_size / 1e6:.1f} MB)")
    archive = make_trimmed_archive(sdist, CARRY / TRIMMED)
    print(f"trimmed: {archive['unpacked_bytes_before'] / 2**20:.1f} MiB unpacked -> "
          f"{archive['unpacked_bytes_after'] / 2**20:.1f} MiB, archive "
          f"{archive['archive_bytes'] / 2**20:.2f} MiB")
    wheels = download_wheels(CARRY / "wheels")
    print("wheels: " + ", ".join(w.name for w in wheels))
    models = write_models(CARRY / "models")
    examples = write_examples(CARRY / "data")
    ref = cpu_reference(models, CARRY / "reference.json", CARRY / "reference_logits.npz")
    print(f"CPU reference: {len(ref['prompts'])} prompts x {len(ref['models'])} files "
          f"(llama-cpp-python {ref['llama_cpp_python']}, GPU offload {ref['gpu_offload']})")
    s = sizes()
    manifest = {
        "made": datetime.now(UTC).isoformat(timespec="seconds"),
        "llama_cpp_python": LLAMA_CPP_VERSION, "sdist_bytes": sdist.stat().st_size,
        "sdist_sha256": sha256(sdist), "trimmed": {**archive, "file": TRIMMED,
                                                   "sha256": sha256(CARRY / TRIMMED)},
        "wheels": [w.name for w in wheels],
        "models": {k: {"file": v.name, "bytes": v.stat().st_size} for k, v in models.items()},
        "examples": {k: v.name for k, v in examples.items()},
        "sizes": {k: v for k, v in s.items() if k != "carry_files"},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print_sizes(sizes())
    return 0 if s["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
