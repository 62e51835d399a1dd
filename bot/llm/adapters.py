"""Trained role models as model references: a folder made by `haggle train` -> its GGUF file.

A model's ``path`` may name the folder `haggle train all` wrote (``path = "adapters/seller"``).
Its manifest.json lists every exported GGUF with its type and whether it passed verification
(top-1 agreement with the merged model, training/verify.py). The folder resolves to:

- the file of type ``quant`` (``quant = "Q8_0"``), when one is asked for;
- else the best verified quantized file (Q8_0 before Q6_K before ... Q2_K: smaller files
  agree less with the merged model), else the verified F16 file.

A file that failed verification, or was never verified, is refused unless the model sets
``force_unverified = true``; a file whose size or sha256 differs from the manifest's is refused
(it is not the file that was verified). Errors say what to run.

Edge module: reads files (manifest.json). ``read_manifest`` is the one manifest reader, for the
bot and for training (training/manifest.py writes the manifests); it refuses a manifest of a
schema version it does not know.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ModelError
from bot.files import file_sha256

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA = 1  # the manifest layout this code reads and training/manifest.py writes

# Preference among quantized files, best first (more bits, closer to the merged model).
QUANT_PREFERENCE = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "IQ4_NL", "Q4_K_M",
                    "IQ4_XS", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")
UNQUANTIZED = ("F16", "BF16", "F32")


def is_model_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a trained model's manifest.json."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest.json of a trained model folder, its schema version checked."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder; a trained model's path names the folder "
                         "`haggle train all --out DIR` wrote (e.g. adapters/seller)")
    if not path.is_file():
        raise ModelError(f"{folder} has no {MANIFEST}, so it is not a trained model folder: point "
                         "the model's path at a .gguf file, or train one with `haggle train all "
                         f"--out {folder}`")
    return read_manifest_file(path)


def read_manifest_file(path: str | Path) -> dict[str, Any]:
    """A manifest.json file: a JSON object of a known schema version, or a ModelError."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} cannot be read as JSON ({exc}); restore it from git or "
                         "re-run `haggle train verify`") from exc
    if not isinstance(manifest, dict):
        raise ModelError(f"{path} is not a manifest (expected a JSON object)")
    if manifest.get("schema") != SCHEMA:
        raise ModelError(f"{path} has manifest schema {manifest.get('schema')!r}; this haggle "
                         f"reads schema {SCHEMA}: use the haggle version that wrote it, or "
                         "re-run `haggle train all` to write the folder again")
    return manifest


def _status(entry: dict[str, Any]) -> str:
    verified = entry.get("verified")
    return "passed" if verified is True else "FAILED" if verified is False else "not verified"


def _agreement(manifest: dict[str, Any], name: str) -> str:
    for result in (manifest.get("verify") or {}).get("results") or []:
        if result.get("file") == name:
            return f"top-1 agreement {result.get('agreement')}, needs {result.get('min_agreement')}"
    return "no verification result"


def choose_entry(manifest: dict[str, Any], folder: Path, *, quant: str | None = None,
                 force_unverified: bool = False) -> dict[str, Any]:
    """The manifest entry of the file to run (see the module docstring for the rules)."""
    entries = [e for e in manifest.get("files") or [] if isinstance(e, dict) and e.get("name")]
    if not entries:
        raise ModelError(f"{folder / MANIFEST} lists no GGUF files: run `haggle train export "
                         f"--out {folder}` and `haggle train verify --out {folder}`")
    listing = ", ".join(f"{e['name']} ({e.get('type')}, {_status(e)})" for e in entries)
    if quant is not None:
        chosen = [e for e in entries if str(e.get("type", "")).upper() == quant.upper()]
        if not chosen:
            raise ModelError(f"{folder} has no {quant} file (it has: {listing}); set quant to "
                             "one of those types, or leave it out for the best verified file")
        entry = chosen[0]
    else:
        rank = {t: i for i, t in enumerate(QUANT_PREFERENCE + UNQUANTIZED)}

        def preference(e: dict[str, Any]) -> int:
            return rank.get(str(e.get("type")), len(rank))

        verified = [e for e in entries if e.get("verified") is True]
        if verified:
            return min(verified, key=preference)
        if not force_unverified:
            raise ModelError(f"{folder}: no file passed verification ({listing}); run `haggle "
                             f"train verify --out {folder}`, or set force_unverified = true to "
                             "run an unverified file anyway")
        entry = min(entries, key=preference)
    if entry.get("verified") is not True:
        what = ("failed verification" if entry.get("verified") is False
                else "has not been verified")
        if not force_unverified:
            raise ModelError(f"{folder / entry['name']} {what} "
                             f"({_agreement(manifest, entry['name'])}): it may not be the model "
                             "that was trained. Re-run `haggle train export` and `verify`, choose "
                             "another quant, or set force_unverified = true to run it anyway")
        log.warning("%s: running %s, which %s (force_unverified = true)", folder, entry["name"],
                    what)
    return entry


@dataclass(frozen=True)
class ManifestFile:
    """The GGUF a trained model folder stands for, as its manifest describes it: the file that
    was verified. The loader checks the file on disk against it (``check_manifest_file``)."""

    path: Path
    folder: Path
    sha256: str | None
    size: int | None
    verified: bool  # whether it passed verification (False runs only with force_unverified)
    role: str | None = None  # the role it was trained for (for the commands an error suggests)


def manifest_file(folder: str | Path, *, quant: str | None = None,
                  force_unverified: bool = False) -> ManifestFile:
    """The manifest's entry for the file ``folder`` resolves to (module docstring's rules)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    entry = choose_entry(manifest, folder, quant=quant, force_unverified=force_unverified)
    size = entry.get("bytes")
    return ManifestFile(path=folder / entry["name"], folder=folder,
                        sha256=entry.get("sha256") or None,
                        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                        verified=entry.get("verified") is True,
                        role=(manifest.get("dataset") or {}).get("role") or None)


def check_manifest_file(expected: ManifestFile, *, force_unverified: bool = False,
                        sha256: bool = True) -> Path:
    """The file, checked to be the one the manifest verified: on disk, of its size and (with
    ``sha256``) of its sha256. The hash is cached per file identity (bot.files), so checking
    again costs one stat. A changed file is refused, saying which and how to re-verify, unless
    ``force_unverified`` (then it is run with a warning)."""
    path, folder = expected.path, expected.folder
    if not path.is_file():
        raise ModelError(f"{path} is listed in {folder / MANIFEST} but is not on disk (GGUF files "
                         f"are not committed): rebuild it with `haggle train all --role ROLE "
                         f"--out {folder}` or copy it there")
    problem = None
    actual = path.stat().st_size
    if expected.size is not None and actual != expected.size:
        problem = (f"{path} has {actual} bytes, {folder / MANIFEST} says {expected.size}: it is "
                   "not the file that was verified")
    elif sha256 and expected.sha256 and (digest := file_sha256(path)) != expected.sha256:
        problem = (f"{path} differs from the file that was verified (sha256 mismatch: "
                   f"{digest[:12]}... on disk, {expected.sha256[:12]}... in {folder / MANIFEST}; "
                   "overwritten by a later export?)")
    if problem is None:
        return path
    if force_unverified:
        log.warning("%s; running it anyway (force_unverified = true)", problem)
        return path
    raise ModelError(f"{problem}. Re-verify it with `haggle train verify --role "
                     f"{expected.role or 'ROLE'} --out {folder}` (which records the file's new "
                     "sha256 if it still agrees with the merged model), or set force_unverified = "
                     "true in its [models.NAME] to run it anyway")


def resolve_model_folder(folder: str | Path, *, quant: str | None = None,
                         force_unverified: bool = False, check_file: bool = True) -> Path:
    """The GGUF file a trained model folder stands for.

    ``check_file``: also check that the file is on disk with the manifest's size and sha256
    (``check_manifest_file``). Without it, the manifest is read and the size compared when the
    file is there: cheap enough for config loading, and valid on a fresh clone where the
    git-ignored GGUFs are not there yet; the loader checks the sha256 (ModelSpec.manifest_file).
    """
    expected = manifest_file(folder, quant=quant, force_unverified=force_unverified)
    if not check_file and not expected.path.is_file():
        return expected.path
    return check_manifest_file(expected, force_unverified=force_unverified, sha256=check_file)


__all__ = ["MANIFEST", "QUANT_PREFERENCE", "SCHEMA", "ManifestFile", "check_manifest_file",
           "choose_entry", "is_model_folder", "manifest_file", "read_manifest",
           "read_manifest_file", "resolve_model_folder"]
