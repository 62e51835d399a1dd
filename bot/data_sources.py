"""Where the datasets come from: the catalogue, the data cache, fetch, verify and lookup.

Edge module (files and network). ``bot/data/datasets.json`` is the catalogue: for each dataset
(CraigslistBargains, Deal or No Deal, AgreeMate's published runs) its public source at a
pinned commit and, per file, the sha256 (where pinned) and the record count. ``haggle data
fetch`` downloads files into the data cache, checks them and only then keeps them;
``haggle data verify`` checks what the commands would read; ``haggle data list`` shows both.

Where a command reads a dataset file, in order:

1. ``[data] KEY`` when set: a local path (relative to the config file) or an ``hf://``
   reference (huggingface-hub's cache; ``HF_HUB_OFFLINE=1`` respected, see ``bot.hub``);
2. else the data cache: ``$HAGGLE_DATA_HOME``, by default ``~/.cache/haggle/datasets``
   (``$XDG_CACHE_HOME/haggle/datasets``), laid out as ``FOLDER/FILE``
   (``craigslist_bargains/test.json``, ``deal_or_no_deal/val.txt``, ``agreemate_results/*.csv``);
3. else a one-line error that says how to get it (``haggle data fetch NAME``, or a local file).

Nothing downloads behind a command's back: only ``haggle data fetch`` (and an ``hf://`` value
in ``[data]``) does, and ``HF_HUB_OFFLINE=1`` stops both. ``--from DIR`` fetches from local
copies in the same layout (the project's CI data, a USB stick) through the same checks.

Why not straight from the Hugging Face Hub: ``stanfordnlp/craigslist_bargains`` (and
``mikelewis0/deal_or_no_dialog``) hold a loading script and no data file, and ``datasets`` 4
no longer runs loading scripts; the catalogue's sources are byte-identical copies of what
those scripts produce (see docs/data.md). A JSON-lines or Parquet export on the Hub works as
an ``hf://`` value in ``[data]``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from bot import hub
from bot.errors import DataError
from bot.files import cache_home

if TYPE_CHECKING:
    from bot.config import Config

CATALOGUE_RESOURCE = "data/datasets.json"
ENV_DATA_HOME = "HAGGLE_DATA_HOME"
RAW_GITHUB = "https://raw.githubusercontent.com"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    dataset: str          # the catalogue name of its dataset ("craigslist")
    name: str             # file name in the dataset's folder ("test.json")
    part: str | None      # split ("test", "validation", "train") or None
    records: int          # data lines (JSON lines, text) or rows (CSV, header excluded)
    sha256: str | None    # None: not pinned (checked by record count only)
    bytes: int | None
    config: str | None    # the [data] key naming this file alone ("craigslist_test")

    @property
    def selector(self) -> str:
        """How `haggle data fetch` names this file alone (``craigslist:test``)."""
        return f"{self.dataset}:{self.part or self.name}"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    folder: str
    records: str            # how records are counted: "lines" or "csv"
    cite: str
    license: str
    hub: str | None         # its card on the Hugging Face Hub, where it has one
    repository: str
    commit: str
    path: str
    config: str | None      # the [data] key naming its folder ("deal_or_no_deal")
    files: tuple[DataFile, ...]

    def url(self, f: DataFile) -> str:
        return (f"{RAW_GITHUB}/{self.repository}/{self.commit}/"
                + urllib.parse.quote(self.path + f.name))

    def file(self, part: str) -> DataFile:
        for f in self.files:
            if part in (f.part, f.name):
                return f
        known = ", ".join(f.part or f.name for f in self.files)
        raise DataError(f"{self.name} has no file {part!r} (it has: {known})")


def catalogue() -> dict[str, Dataset]:
    """The datasets of ``bot/data/datasets.json`` by name."""
    doc = json.loads(resources.files("bot").joinpath(CATALOGUE_RESOURCE).read_text("utf-8"))
    out = {}
    for d in doc["datasets"]:
        files = tuple(DataFile(dataset=d["name"], name=f["name"], part=f.get("part"),
                               records=f["records"], sha256=f.get("sha256"),
                               bytes=f.get("bytes"), config=f.get("config"))
                      for f in d["files"])
        src = d["source"]
        out[d["name"]] = Dataset(name=d["name"], title=d["title"], folder=d["folder"],
                                 records=d["records"], cite=d["cite"], license=d["license"],
                                 hub=d.get("hub"), repository=src["repository"],
                                 commit=src["commit"], path=src["path"], config=d.get("config"),
                                 files=files)
    return out


def select(names: Iterable[str]) -> list[tuple[Dataset, DataFile]]:
    """Files named by ``NAME`` (all its files), ``NAME:PART`` or ``all``, in catalogue order."""
    cat = catalogue()
    chosen: list[tuple[Dataset, DataFile]] = []
    for name in names:
        ds_name, _, part = name.partition(":")
        if ds_name == "all" and not part:
            picked = [(ds, f) for ds in cat.values() for f in ds.files]
        elif ds_name in cat:
            ds = cat[ds_name]
            picked = [(ds, ds.file(part))] if part else [(ds, f) for f in ds.files]
        else:
            raise DataError(f"unknown dataset {name!r}: use one of {', '.join(cat)}, "
                            "NAME:SPLIT (e.g. craigslist:test) or all")
        chosen += [p for p in picked if p not in chosen]
    return chosen


# --------------------------------------------------------------------------- where files are


def data_home() -> Path:
    """The data cache: $HAGGLE_DATA_HOME, else $XDG_CACHE_HOME/haggle/datasets."""
    return cache_home(ENV_DATA_HOME, "datasets")


def offline() -> bool:
    """Whether downloads are off: HF_HUB_OFFLINE (read now, or as huggingface-hub read it)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # pragma: no cover - a runtime dependency
        return False
    return bool(hf_constants.HF_HUB_OFFLINE)


def cached_path(ds: Dataset, f: DataFile, home: Path | None = None) -> Path:
    return (home or data_home()) / ds.folder / f.name


def configured(cfg: Config, ds: Dataset, f: DataFile) -> str | None:
    """What ``[data]`` says for this file: a local path or hf:// reference, or None (unset)."""
    if f.config and getattr(cfg.data, f.config):
        value = getattr(cfg.data, f.config)
        return value if hub.is_hub_ref(value) else str(cfg.resolve_path(value))
    if ds.config and getattr(cfg.data, ds.config):
        value = getattr(cfg.data, ds.config)
        if hub.is_hub_ref(value):
            return value
        path = cfg.resolve_path(value)
        return str(path / f.name) if path.is_dir() or not path.suffix else str(path)
    return None


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def missing_message(what: str, selector: str, key: str, *, thing: str = "file") -> str:
    """One line: what is missing and how to get it."""
    where = _home_relative(data_home())
    verb = "are" if what.endswith("runs") else "is"
    if offline():
        return (f"{what} {verb} not in the data cache ({where}) and HF_HUB_OFFLINE=1: run "
                f"`haggle data fetch {selector}` online (or with --from DIR, local copies), "
                f"or set [data] {key} to a local {thing}")
    return (f"{what} {verb} not in the data cache ({where}): run `haggle data fetch {selector}`, "
            f"or set [data] {key} to a local {thing}")


def locate(cfg: Config, dataset: str, part: str) -> str:
    """The file a command reads for ``dataset``'s ``part``: a local path or an hf:// reference.

    ``[data]`` first, then the data cache; neither gives a one-line DataError saying how to
    get it. A configured local file that does not exist is an error naming it.
    """
    ds = catalogue()[dataset]
    f = ds.file(part)
    key = f.config or ds.config or ""
    ref = configured(cfg, ds, f)
    if ref is not None:
        if not hub.is_hub_ref(ref) and not Path(ref).is_file():
            raise DataError(f"[data] {key}: {ref} is not a file (fix the path, or set it to \"\" "
                            f"to use `haggle data fetch {f.selector}`)")
        return ref
    path = cached_path(ds, f)
    if not path.is_file():
        what = f"{ds.title} {f.part + ' split' if f.part else f.name}"
        raise DataError(missing_message(what, f.selector, key))
    return str(path)


def locate_folder(cfg: Config, dataset: str) -> Path:
    """The folder of a whole-folder dataset (``agreemate-results``): [data] or the cache."""
    ds = catalogue()[dataset]
    if ds.config and getattr(cfg.data, ds.config):
        return cfg.resolve_path(getattr(cfg.data, ds.config))
    folder = data_home() / ds.folder
    if not any(folder.glob("*")):
        raise DataError(missing_message(ds.title, ds.name, ds.config or "", thing="folder"))
    return folder


# --------------------------------------------------------------------------- checks


def count_records(path: Path, how: str) -> int:
    """Data lines (JSON lines, text) or CSV rows (header excluded); blank ones do not count."""
    with path.open(encoding="utf-8", newline="") as fh:
        if how == "csv":
            reader = csv.reader(fh)
            next(reader, None)
            return sum(1 for row in reader if any(cell.strip() for cell in row))
        return sum(1 for line in fh if line.strip())


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Check:
    dataset: str
    file: str
    path: str              # where it was looked for (a path or an hf:// reference)
    present: bool
    sha256: str | None = None
    records: int | None = None
    problem: str | None = None  # None: present and as the catalogue says
    pinned: bool = False        # the catalogue pins its sha256 (else: the record count only)

    @property
    def ok(self) -> bool:
        return self.present and self.problem is None


def check_file(ds: Dataset, f: DataFile, path: Path, shown: str | None = None) -> Check:
    """Is ``path`` the catalogue's file: sha256 (where pinned) and record count."""
    shown = shown or str(path)
    if not path.is_file():
        return Check(ds.name, f.name, shown, present=False, problem="missing")
    digest = sha256_of(path)
    try:
        records = count_records(path, ds.records)
    except (UnicodeDecodeError, csv.Error) as exc:
        return Check(ds.name, f.name, shown, True, digest, None, f"unreadable ({exc})")
    problem = None
    if f.sha256 and digest != f.sha256:
        problem = f"sha256 {digest[:12]}... is not the pinned {f.sha256[:12]}..."
    elif records != f.records:
        problem = f"{records} records, expected {f.records}"
    return Check(ds.name, f.name, shown, True, digest, records, problem, f.sha256 is not None)


def verify(cfg: Config, names: Iterable[str] = ("all",), *,
           missing_ok: bool = False) -> list[Check]:
    """Check what the commands would read ([data] or the cache); never downloads."""
    checks = []
    for ds, f in select(names):
        ref = configured(cfg, ds, f)
        if ref is None:
            checks.append(check_file(ds, f, cached_path(ds, f)))
        elif hub.is_hub_ref(ref):
            checks.append(_check_hub(ds, f, ref, download=False))
        else:
            checks.append(check_file(ds, f, Path(ref)))
    if missing_ok:
        checks = [c for c in checks if c.present]
    return checks


def _check_hub(ds: Dataset, f: DataFile, ref: str, *, download: bool) -> Check:
    try:
        path = hub.download(ref) if download else _hub_cached(ref)
    except hub.HubError as exc:
        return Check(ds.name, f.name, ref, present=False, problem=str(exc))
    if path is None:
        return Check(ds.name, f.name, ref, present=False, problem="missing")
    result = check_file(ds, f, path, shown=ref)
    if result.problem and result.problem.startswith("sha256") and result.records == f.records:
        # another export of the same split (Parquet, JSON lines by another writer): the
        # bytes differ from the pinned copy, the record count is what can be checked
        return Check(ds.name, f.name, ref, True, result.sha256, result.records, None, False)
    return result


def _hub_cached(ref: str) -> Path | None:
    """The cached file of an hf:// reference, or None; never downloads."""
    from huggingface_hub import try_to_load_from_cache

    r = hub.parse_hub_ref(ref)
    found = try_to_load_from_cache(repo_id=r.repo_id, filename=r.filename,
                                   repo_type=r.repo_type, revision=r.revision)
    return Path(found) if isinstance(found, str) else None


# --------------------------------------------------------------------------- fetching


def _download(url: str, dest: Path, ds: Dataset, f: DataFile) -> Check:
    """Download ``url`` beside ``dest``, check it, then move it into place (else drop it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{url}: download failed ({reason}); check the network, or fetch from "
                        "local copies with --from DIR") from exc
    result = check_file(ds, f, partial, shown=str(dest))
    if not result.ok:
        partial.unlink(missing_ok=True)
        raise DataError(f"{url}: {result.problem}; the file was not kept")
    os.replace(partial, dest)
    return result


def fetch(cfg: Config, names: Iterable[str], *, source: Path | None = None,
          force: bool = False) -> Iterator[tuple[str, Check]]:
    """Fetch the named files into the data cache; yields (what was done, check) per file.

    A file ``[data]`` names is not fetched from the catalogue: a local one is checked, an
    hf:// one downloaded into huggingface-hub's cache and checked. ``source`` is a folder
    of local copies in the cache layout (``FOLDER/FILE``) to fetch from instead of the
    network. A file already in the cache and as pinned is kept unless ``force``.
    """
    for ds, f in select(names):
        ref = configured(cfg, ds, f)
        if ref is not None:
            if hub.is_hub_ref(ref):
                yield "hub", _check_hub(ds, f, ref, download=True)  # bot.hub heeds HF_HUB_OFFLINE
            else:
                yield "configured", check_file(ds, f, Path(ref))
            continue
        dest = cached_path(ds, f)
        if not force:
            present = check_file(ds, f, dest)
            if present.ok:
                yield "cached", present
                continue
        if source is not None:
            local = source / ds.folder / f.name
            if not local.is_file():
                yield "missing", Check(ds.name, f.name, str(local), present=False,
                                       problem=f"not in --from (expected DIR/{ds.folder}/{f.name})")
                continue
            yield "copied", _download(local.resolve().as_uri(), dest, ds, f)
            continue
        if offline():
            yield "offline", Check(ds.name, f.name, str(dest), present=False,
                                   problem="not in the data cache and HF_HUB_OFFLINE=1 forbids "
                                           "downloads: unset it, or use --from DIR")
            continue
        yield "downloaded", _download(ds.url(f), dest, ds, f)
