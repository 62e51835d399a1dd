"""``hf://`` references: files on the Hugging Face Hub, downloaded and cached by huggingface-hub.

A reference is ``hf://OWNER/REPO/PATH/IN/REPO`` for a model repository, or
``hf://datasets/OWNER/REPO/PATH/IN/REPO`` for a dataset repository; ``@REVISION`` may follow
the repository name (``hf://OWNER/REPO@main/FILE.gguf``), percent-encoded when it holds a slash
(``hf://datasets/OWNER/REPO@refs%2Fconvert%2Fparquet/default/train/0000.parquet``).
Downloads go to huggingface-hub's cache
(HF_HOME / HF_HUB_CACHE), and HF_HUB_OFFLINE=1 is respected: a cached file is used, a missing
one is a clear error naming the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from bot.errors import HaggleError

PREFIX = "hf://"


class HubError(HaggleError):
    """An hf:// reference is malformed or its file cannot be had."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str
    repo_type: str = "model"
    revision: str | None = None

    def __str__(self) -> str:
        kind = "datasets/" if self.repo_type == "dataset" else ""
        rev = f"@{quote(self.revision, safe='')}" if self.revision else ""
        return f"{PREFIX}{kind}{self.repo_id}{rev}/{self.filename}"


def is_hub_ref(ref: str | Path) -> bool:
    return isinstance(ref, str) and ref.startswith(PREFIX)


def parse_hub_ref(ref: str) -> HubRef:
    if not is_hub_ref(ref):
        raise HubError(f"{ref!r} is not an hf:// reference (expected hf://OWNER/REPO/FILE)")
    parts = ref[len(PREFIX):].split("/")
    repo_type = "model"
    if parts and parts[0] in ("datasets", "models"):
        repo_type = "dataset" if parts[0] == "datasets" else "model"
        parts = parts[1:]
    if len(parts) < 3 or not all(parts):
        raise HubError(
            f"malformed reference {ref!r}: use hf://OWNER/REPO/FILE "
            "(or hf://datasets/OWNER/REPO/FILE for a dataset)"
        )
    owner, repo = parts[0], parts[1]
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return HubRef(repo_id=f"{owner}/{repo}", filename="/".join(parts[2:]),
                  repo_type=repo_type, revision=unquote(revision) if revision else None)


def download(ref: str, *, cache_dir: str | Path | None = None) -> Path:
    """Return the local path of the file ``ref`` names, downloading it into the cache if needed."""
    hub = parse_hub_ref(ref)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise HubError("huggingface-hub is not installed: pip install huggingface-hub") from exc
    try:
        path = hf_hub_download(
            repo_id=hub.repo_id, filename=hub.filename, repo_type=hub.repo_type,
            revision=hub.revision, cache_dir=str(cache_dir) if cache_dir else None,
        )
    except LocalEntryNotFoundError as exc:
        raise HubError(
            f"{ref} is not in the local Hugging Face cache and cannot be downloaded now "
            f"(offline, or the Hub is unreachable). Download it once with network access, "
            f"or unset HF_HUB_OFFLINE. ({exc.__class__.__name__})"
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise HubError(f"{ref}: no such repository, revision or file on the Hub ({exc})") from exc
    except OSError as exc:
        raise HubError(f"{ref}: download failed: {exc}") from exc
    return Path(path)


def resolve(ref: str | Path, *, base_dir: Path | None = None) -> Path:
    """A local path for ``ref``: hf:// references are downloaded, relative paths resolved."""
    if is_hub_ref(ref):
        return download(str(ref))
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path
