"""bot/negotiation is the pure core: it imports no edge library (discord, llama_cpp, databases,
network, torch), so it runs and tests anywhere. Checked on the source, not at runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "bot" / "negotiation"
FORBIDDEN = {"discord", "llama_cpp", "aiosqlite", "sqlite3", "torch", "transformers", "peft",
             "huggingface_hub", "requests", "httpx", "aiohttp", "urllib", "socket", "http",
             "gguf", "numpy", "matplotlib", "tqdm", "bot.llm", "bot.store", "bot.cogs",
             "bot.datasets", "training"}
ALLOWED_BOT = ("bot.negotiation", "bot.errors")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_core_imports_no_edge_library():
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN or any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.name}: {name}")
            elif top == "bot" and not name.startswith(ALLOWED_BOT):
                offenders.append(f"{path.name}: {name} (the core may import only bot.negotiation, bot.errors)")
    assert not offenders, "impure imports in bot/negotiation:\n" + "\n".join(offenders)


def test_core_reads_no_files():
    for path in sorted(CORE.glob("*.py")):
        src = path.read_text()
        assert "open(" not in src, f"{path.name} opens files; the core must stay pure"


def test_importing_the_core_loads_no_edge_module():
    code = ("import sys, bot.negotiation.runner, bot.negotiation.session, bot.negotiation.prompts;"
            "bad = [m for m in ('discord','llama_cpp','aiosqlite','torch','transformers','numpy') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_imports_nothing_heavy():
    code = ("import sys; from bot.cli import build_parser; build_parser();"
            "bad = [m for m in ('discord','llama_cpp','torch','transformers','aiosqlite','matplotlib')"
            " if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
