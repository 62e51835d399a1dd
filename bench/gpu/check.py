"""The device check: build llama-cpp-python with CUDA from the carried tree, then check serving
and training on the GPU, writing one JSON report. Prepared by bench/gpu/prepare.py.

On the device (the `run` tool; carry = ["build/gpu-carry"], see docs/gpu.md):

    bash bench/gpu_check.sh                      # every step, report in $OUT/gpu_report.json

Here, without a GPU (uses the calling interpreter and its CPU llama-cpp-python; builds nothing):

    .venv/bin/python bench/gpu/check.py --cpu    # report in build/gpu-out/gpu_report.json

Steps, in order, each in its own process group with a time box; a failure is recorded and the
next step runs: probe (tools, torch, modules), venv (--system-site-packages, so torch,
transformers, peft and accelerate of the image are used; the carried wheels installed with
--no-index), build (llama-cpp-python from the trimmed sdist, CMAKE_ARGS below; skipped when a
build of the same archive and arguments is already installed, so a rerun on a warm machine
goes straight to the checks, and an interrupted build resumes in its CMake build folder), then
the checks of bench/gpu/steps.py: logits, negotiation, train_fit, train_merge, train_export,
train_verify, train_accelerate, train_qlora. The whole run keeps within --budget seconds (the
device allows 10 minutes a command); steps that no longer fit are recorded as skipped.

Only the standard library here: this runs under the device's system python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CARRY = REPO / "build" / "gpu-carry"
WORK = REPO / "build" / "gpu-work"  # not carried; kept between calls on a warm machine
SRC_DIR = "llama_cpp_python-0.3.36"
ARCHIVE = f"{SRC_DIR}-trimmed.tar.gz"

# Only what the bot and the training use: no FlashAttention kernels (haggle never asks for
# flash_attn, llama-cpp-python's default is off) nor mtmd, tools, tests or examples; sm_90 only
# (H100/H200). The CPU part portable: -march=native hit SIGILL on AMX elsewhere (DESIGN.md).
COMMON_CMAKE = ("-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF "
                "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF")
CUDA_CMAKE = ("-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF "
              "-DGGML_CUDA_NCCL=OFF " + COMMON_CMAKE)

# Time boxes (seconds): generous against what they should take, small against the budget.
BOXES = {"probe": 40, "venv": 90, "build": 420, "logits": 90, "negotiation": 150,
         "train_fit": 150, "train_merge": 90, "train_export": 60, "train_verify": 60,
         "train_accelerate": 150, "train_qlora": 90}
CHECKS = ("logits", "negotiation", "train_fit", "train_merge", "train_export", "train_verify",
          "train_accelerate", "train_qlora")
NEEDS_LLAMA = {"logits", "negotiation", "train_export", "train_verify"}
ALL_STEPS = ("probe", "venv", "build", *CHECKS)
STATUSES = ("ok", "failed", "timeout", "error", "skipped")
SCHEMA = 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Report:
    """The JSON report, rewritten after every step so a killed run still leaves one."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = path
        self.data = {"schema": SCHEMA, "started": now(), "finished": None, **meta, "steps": []}
        self.write()

    def record(self, name: str, status: str, seconds: float, **fields) -> dict:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        entry = {"step": name, "status": status, "seconds": round(seconds, 2), **fields}
        self.data["steps"].append(entry)
        self.write()
        return entry

    def step(self, name: str) -> dict | None:
        return next((s for s in self.data["steps"] if s["step"] == name), None)

    def ok(self, name: str) -> bool:
        entry = self.step(name)
        return entry is not None and entry["status"] == "ok"

    def finish(self) -> dict:
        steps = self.data["steps"]
        self.data["finished"] = now()
        self.data["summary"] = {s: sum(1 for e in steps if e["status"] == s) for s in STATUSES}
        self.write()
        return self.data

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def run_boxed(cmd: list[str], timeout: float, log: Path, *, env: dict | None = None,
              cwd: Path = REPO) -> tuple[int | None, float]:
    """Run ``cmd`` in its own process group, output to ``log``; (rc or None on timeout, s).

    On timeout the whole group is killed (pip's cmake/ninja, accelerate's worker included).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    return rc, time.perf_counter() - t0


def tail(path: Path, n: int = 25) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[-n:]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    text = (res.stdout or res.stderr).strip().splitlines()
    return text[-1] if cmd[0] == "nvcc" and text else (text[0] if text else "")


def _first(patterns: list[str]) -> Path | None:
    import glob

    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return Path(hits[-1])
    return None


def cuda_major(nvcc_version: str | None) -> int | None:
    """13 from nvcc's "Build cuda_13.0.r13.0/compiler..." or "... release 13.0, V13.0.88"."""
    import re

    m = re.search(r"(?:cuda_|release )(\d+)\.", nvcc_version or "")
    return int(m.group(1)) if m else None


def find_cuda_libs(site_dirs: list[str], nvcc: str | None = None, major: int | None = None,
                   system_roots: tuple[str, ...] = ("/usr/local/cuda", "/usr")) -> dict:
    """Where cuBLAS (headers, libraries) and the driver library are, for CMake and the loader.

    A CUDA toolkit assembled from NVIDIA's pip wheels (nvcc, runtime, cccl: what this project's
    machines carry) has no cuBLAS; PyTorch's CUDA wheels bring it as nvidia-cublas, under
    site-packages/nvidia/cu13/ (CUDA 13) or nvidia/cublas/ (CUDA 12), with versioned .so files
    only, which CMake's FindCUDAToolkit does not look for. Returns {"cmake_args": [...],
    "ld_library_path": [...], "found": {...}}; an empty cmake_args where the toolkit has it all.
    """
    roots = []
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent)
    roots += [Path(p) for p in system_roots]
    toolkit_inc = [str(r / sub) for r in roots for sub in ("include", "targets/*/include")]
    toolkit_lib = [str(r / sub) for r in roots for sub in ("lib64", "lib", "targets/*/lib",
                                                           "lib/x86_64-linux-gnu")]
    # the toolkit's own major version first (nvidia/cu13), then any (nvidia/cublas: CUDA 12)
    pip_dirs = ([str(Path(d) / "nvidia" / f"cu{major}") for d in site_dirs] if major else []) + \
        [str(Path(d) / "nvidia" / "*") for d in site_dirs]
    found: dict[str, str | None] = {}
    args: list[str] = []
    ld: list[str] = []
    header = _first([f"{d}/cublas_v2.h" for d in toolkit_inc])
    lib = _first([f"{d}/libcublas.so" for d in toolkit_lib])
    if header is None or lib is None:  # not in the toolkit: PyTorch's nvidia-cublas wheel
        header = _first([f"{d}/include/cublas_v2.h" for d in pip_dirs])
        lib = _first([f"{d}/lib/libcublas.so*" for d in pip_dirs])
        lt = _first([f"{d}/lib/libcublasLt.so*" for d in pip_dirs])
        if header is not None and lib is not None:
            inc = str(header.parent)
            args += [f"-DCUDA_cublas_LIBRARY={lib}", f"-DCMAKE_CUDA_FLAGS=-I{inc}",
                     f"-DCMAKE_CXX_FLAGS=-I{inc}"]
            if lt is not None:
                args.append(f"-DCUDA_cublasLt_LIBRARY={lt}")
            ld.append(str(lib.parent))
            found["cublasLt"] = str(lt) if lt else None
    found["cublas_header"] = str(header) if header else None
    found["cublas_library"] = str(lib) if lib else None
    driver = _first([f"{d}/libcuda.so" for d in toolkit_lib] +
                    ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1",
                     "/usr/local/nvidia/lib64/libcuda.so.1"] +
                    [f"{d}/stubs/libcuda.so" for d in toolkit_lib])
    cudart = _first([f"{d}/libcudart.so*" for d in toolkit_lib])
    if cudart is not None:
        ld.append(str(cudart.parent))
    found["cudart"] = str(cudart) if cudart else None
    found["cuda_driver"] = str(driver) if driver else None
    if driver is None:  # no libcuda to link: the legacy memory pool needs none
        args.append("-DGGML_CUDA_NO_VMM=ON")
    elif not str(driver).endswith("libcuda.so") or "stubs" in str(driver):
        args.append(f"-DCUDA_cuda_driver_LIBRARY={driver}")
    return {"cmake_args": args, "ld_library_path": ld, "found": found}


def put_nvcc_on_path() -> str | None:
    """nvcc's path; a toolkit at /usr/local/cuda whose bin/ is not on PATH is put there."""
    if shutil.which("nvcc") is None:
        for root in ("/usr/local/cuda", *sorted(glob_dirs("/usr/local/cuda-*"), reverse=True)):
            if (Path(root) / "bin" / "nvcc").is_file():
                os.environ["PATH"] = f"{root}/bin{os.pathsep}{os.environ.get('PATH', '')}"
                break
    return shutil.which("nvcc")


def glob_dirs(pattern: str) -> list[str]:
    import glob

    return [p for p in glob.glob(pattern) if Path(p).is_dir()]


class Check:
    """One run of the steps, in GPU mode (venv + CUDA build) or CPU mode (this interpreter)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cpu = args.cpu
        self.out = Path(args.out)
        self.logs = self.out / "logs"
        self.deadline = time.monotonic() + args.budget
        self.venv = WORK / "venv"
        self.python = sys.executable if self.cpu else str(self.venv / "bin" / "python")
        self.cmake_args = args.cmake_args or (COMMON_CMAKE if self.cpu else CUDA_CMAKE)
        if not self.cpu:
            put_nvcc_on_path()  # before any step: the build and the probe both look for it
        self.report = Report(self.out / "gpu_report.json", {
            "mode": "cpu" if self.cpu else "gpu", "repo_commit": self._commit(),
            "budget_s": args.budget, "cmake_args": self.cmake_args, "python": self.python,
            "carry": self._carry_manifest()})

    @staticmethod
    def _commit() -> str | None:
        try:
            return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                  check=False, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            return None

    @staticmethod
    def _carry_manifest() -> dict | None:
        path = CARRY / "manifest.json"
        if not path.is_file():
            return None
        m = json.loads(path.read_text(encoding="utf-8"))
        return {"made": m.get("made"), "trimmed_sha256": m.get("trimmed", {}).get("sha256"),
                "total_mib": m.get("sizes", {}).get("total_mib")}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def box(self, name: str) -> float | None:
        """The time this step may take now (None: not enough budget left to start it)."""
        left = self.remaining() - 5
        box = self.args.build_box if name == "build" and self.args.build_box else BOXES[name]
        return min(box, left) if left >= 15 else None

    @staticmethod
    def _site_dirs(python: str) -> list[str]:
        """The checking interpreter's import path (torch's nvidia-* wheels live there)."""
        try:
            out = subprocess.run([python, "-c", "import json, sys; print(json.dumps(sys.path))"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout
            return [p for p in json.loads(out) if p]
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return []

    def env(self) -> dict:
        env = dict(os.environ)
        libs = WORK / "cuda_libs.json"
        if not self.cpu and libs.is_file():  # pip cuBLAS / toolkit runtime for the loader
            extra = json.loads(libs.read_text()).get("ld_library_path", [])
            env["LD_LIBRARY_PATH"] = os.pathsep.join([*extra, env.get("LD_LIBRARY_PATH", "")])
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        return env

    # ---- steps run here

    def step_probe(self, timeout: float) -> None:
        t0 = time.perf_counter()
        tools = {name: tool_version(cmd) for name, cmd in {
            "nvidia-smi": ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                           "--format=csv,noheader"],
            "nvcc": ["nvcc", "--version"], "cmake": ["cmake", "--version"],
            "ninja": ["ninja", "--version"], "gcc": ["gcc", "--version"]}.items()}
        result = self.out / "probe.json"
        rc, _ = run_boxed([sys.executable, str(REPO / "bench" / "gpu" / "steps.py"), "probe",
                           "--result", str(result)], timeout, self.logs / "probe.log",
                          env=self.env())
        found = json.loads(result.read_text()) if result.is_file() else {}
        missing = [t for t in ("nvcc", "cmake", "ninja") if tools[t] is None]
        status = "ok" if rc == 0 and found.get("ok") and (self.cpu or not missing) else "failed"
        self.report.record("probe", status, time.perf_counter() - t0, tools=tools,
                           system_python=sys.version.split()[0], cpus=os.cpu_count(),
                           missing_tools=missing, **found)

    def step_venv(self, timeout: float) -> None:
        t0 = time.perf_counter()
        if self.cpu:
            self.report.record("venv", "skipped", 0, reason="CPU mode: the calling interpreter "
                               f"({sys.executable}) runs the checks")
            return
        log = self.logs / "venv.log"
        if not (self.venv / "bin" / "python").is_file():
            rc, _ = run_boxed([sys.executable, "-m", "venv", "--system-site-packages",
                               str(self.venv)], timeout, log)
            if rc != 0:  # no ensurepip (Debian without python3-venv): the system's pip serves,
                shutil.rmtree(self.venv, ignore_errors=True)  # importable through system site
                rc, _ = run_boxed([sys.executable, "-m", "venv", "--system-site-packages",
                                   "--without-pip", str(self.venv)], timeout, log)
            if rc != 0:
                self.report.record("venv", "error", time.perf_counter() - t0, rc=rc,
                                   log_tail=tail(log))
                return
        wheels = sorted(str(w) for w in (CARRY / "wheels").glob("*.whl"))
        rc, _ = run_boxed([self.python, "-m", "pip", "install", "--no-index", "--no-deps",
                           "--disable-pip-version-check", *wheels],
                          max(timeout - (time.perf_counter() - t0), 5), log)
        self.report.record("venv", "ok" if rc == 0 else "error", time.perf_counter() - t0,
                           venv=str(self.venv), wheels=[Path(w).name for w in wheels], rc=rc,
                           log_tail=[] if rc == 0 else tail(log))

    def _stamp(self) -> dict:
        return {"archive_sha256": sha256(CARRY / ARCHIVE), "cmake_args": self.cmake_args}

    def built(self) -> bool:
        """A build of the carried archive with these CMake arguments is installed (this run or
        an earlier one on the same warm machine)."""
        stamp_file = WORK / "build.stamp.json"
        return (stamp_file.is_file() and (CARRY / ARCHIVE).is_file()
                and json.loads(stamp_file.read_text()) == self._stamp()
                and Path(self.python).is_file())

    def step_build(self, timeout: float) -> None:
        t0 = time.perf_counter()
        if self.cpu and not self.args.build:
            self.report.record("build", "skipped", 0, reason="CPU mode: the interpreter's own "
                               "llama-cpp-python is used (pass --build to build the trimmed tree)")
            return
        if not self.cpu and not self.report.ok("venv"):
            self.report.record("build", "skipped", 0, reason="no venv")
            return
        archive = CARRY / ARCHIVE
        if not archive.is_file():
            self.report.record("build", "error", 0, reason=f"{archive} is missing: run "
                               "bench/gpu/prepare.py where PyPI is reachable, carry "
                               "build/gpu-carry")
            return
        stamp_file, stamp = WORK / "build.stamp.json", self._stamp()
        python = self.python if not self.cpu else str(WORK / "cpu-venv" / "bin" / "python")
        if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp and \
                Path(python).is_file():
            self.report.record("build", "ok", time.perf_counter() - t0, reused=True, **stamp)
            return
        log = WORK / "logs" / "build.log"  # pip -v: thousands of lines; $OUT gets the tail
        log.unlink(missing_ok=True)
        src = WORK / "src"
        marker = src / ".archive_sha256"
        if not marker.is_file() or marker.read_text() != stamp["archive_sha256"]:
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir(parents=True)
            with tarfile.open(archive) as tar:
                tar.extractall(src, filter="data")
            marker.write_text(stamp["archive_sha256"])
        if self.cpu:  # building the trimmed tree here: a venv of its own, this repo's wheels
            if not Path(python).is_file():
                subprocess.run([sys.executable, "-m", "venv", str(WORK / "cpu-venv")], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                            *map(str, (CARRY / "wheels").glob("*.whl"))], check=True)
        env = self.env()
        cmake_args, cuda = self.cmake_args, None
        if "-dggml_cuda=on" in cmake_args.lower():
            cuda = find_cuda_libs(self._site_dirs(python), shutil.which("nvcc"),
                                  cuda_major(tool_version(["nvcc", "--version"])))
            cmake_args = " ".join([cmake_args, *cuda["cmake_args"]])
            (WORK / "cuda_libs.json").write_text(json.dumps(cuda))
        env["CMAKE_ARGS"] = cmake_args
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(self.args.jobs or os.cpu_count() or 1)
        cmd = [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-v",
               f"--config-settings=build-dir={WORK / 'cmake'}", str(src / SRC_DIR)]
        rc, seconds = run_boxed(cmd, max(timeout - (time.perf_counter() - t0), 5), log, env=env)
        if rc == 0:
            stamp_file.write_text(json.dumps(stamp))
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.logs / "build.tail.log").write_text("\n".join(tail(log, 300)) + "\n")
        status = "ok" if rc == 0 else ("timeout" if rc is None else "error")
        self.report.record("build", status, time.perf_counter() - t0, rc=rc,
                           cmake_args=cmake_args, cuda_libs=cuda and cuda["found"],
                           compile_seconds=round(seconds, 1),
                           jobs=env["CMAKE_BUILD_PARALLEL_LEVEL"],
                           log_tail=tail(log, 12 if rc == 0 else 40),
                           note=None if rc is not None else "rerun the same command: the build "
                           "resumes in build/gpu-work/cmake while the machine is warm")

    # ---- steps run in the checking interpreter (bench/gpu/steps.py)

    def step_check(self, name: str, timeout: float) -> None:
        if name in NEEDS_LLAMA and not self.cpu and not self.built():
            self.report.record(name, "skipped", 0, reason="needs the CUDA build of "
                               "llama-cpp-python, which did not complete")
            return
        python = self.python
        if not Path(python).is_file():
            self.report.record(name, "skipped", 0, reason=f"no interpreter at {python}")
            return
        result = self.out / "steps" / f"{name}.json"
        result.unlink(missing_ok=True)
        log = self.logs / f"{name}.log"
        cmd = [python, str(REPO / "bench" / "gpu" / "steps.py"), name, "--result", str(result),
               "--work", str(WORK / ("cpu" if self.cpu else "gpu")), "--carry", str(CARRY),
               "--device", "cpu" if self.cpu else "cuda"]
        rc, seconds = run_boxed(cmd, timeout, log, env=self.env())
        found = json.loads(result.read_text()) if result.is_file() else None
        if rc is None:
            status = "timeout"
        elif found is None:
            status = "error"
        else:
            status = "ok" if found.pop("ok") else "failed"
        extra = found or {"rc": rc}
        if status != "ok":
            extra["log_tail"] = tail(log)
        self.report.record(name, status, seconds, **extra)

    def run(self, steps: list[str]) -> dict:
        for name in steps:
            timeout = self.box(name)
            if timeout is None:
                self.report.record(name, "skipped", 0, reason=f"out of time: {self.remaining():.0f}"
                                   f" s of the {self.args.budget} s budget left")
                continue
            if name == "probe":
                self.step_probe(timeout)
            elif name == "venv":
                self.step_venv(timeout)
            elif name == "build":
                self.step_build(timeout)
            else:
                self.step_check(name, timeout)
            last = self.report.data["steps"][-1]
            print(f"[{last['seconds']:7.1f} s] {name:<17} {last['status']}", flush=True)
        return self.report.finish()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true",
                   help="no GPU: run the checks with this interpreter's CPU llama-cpp-python "
                        "(also set by HAGGLE_GPU_CHECK_CPU=1)")
    p.add_argument("--build", action="store_true",
                   help="CPU mode: still build the trimmed tree (CPU only, in build/gpu-work)")
    p.add_argument("--steps", default=",".join(ALL_STEPS),
                   help=f"comma-separated steps (default all: {','.join(ALL_STEPS)})")
    p.add_argument("--budget", type=int, default=int(os.environ.get("HAGGLE_GPU_BUDGET", "560")),
                   help="seconds for the whole run (default 560: the device allows 600 a command)")
    p.add_argument("--build-box", type=int,
                   help=f"seconds the build may take (default {BOXES['build']})")
    p.add_argument("--jobs", type=int, help="parallel compile jobs (default: every CPU)")
    p.add_argument("--cmake-args", help=f"override CMAKE_ARGS (GPU default: {CUDA_CMAKE})")
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "build" / "gpu-out"),
                   help="report folder (default $OUT, else build/gpu-out)")
    args = p.parse_args(argv)
    args.cpu = args.cpu or os.environ.get("HAGGLE_GPU_CHECK_CPU", "") not in ("", "0")
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in ALL_STEPS]
    if unknown:
        p.error(f"unknown steps {unknown}; choose from {', '.join(ALL_STEPS)}")
    args.step_list = steps
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check = Check(args)
    print(f"gpu check ({'CPU' if check.cpu else 'GPU'} mode), report: {check.report.path}",
          flush=True)
    data = check.run(args.step_list)
    print(json.dumps(data["summary"]))
    return 0 if data["summary"]["ok"] == len(data["steps"]) - data["summary"]["skipped"] else 1


if __name__ == "__main__":
    sys.exit(main())
