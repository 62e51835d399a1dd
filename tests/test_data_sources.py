"""`haggle data`: the catalogue, fetching (the real download code, on file:// URLs and a fake
local Hugging Face cache: nothing downloads), verifying and where commands find the data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot import data_sources as ds
from bot.cli import main
from bot.config import parse_config
from bot.errors import DataError
from tests.conftest import SHARED_DATA, shared_file


def _lines(n: int, tag: str = "x") -> bytes:
    return "".join(json.dumps({"n": i, "tag": tag}) + "\n" for i in range(n)).encode()


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A catalogue of one small dataset whose 'remote' is a local folder (file:// URLs)."""
    remote = tmp_path / "remote"
    (remote / "small").mkdir(parents=True)
    good = _lines(3)
    (remote / "small" / "a.json").write_bytes(good)
    (remote / "small" / "b.json").write_bytes(_lines(2))
    files = (
        ds.DataFile("small", "a.json", "test", 3, hashlib.sha256(good).hexdigest(), len(good),
                    "craigslist_test"),
        ds.DataFile("small", "b.json", "train", 2, None, None, "craigslist_train"),
    )
    dataset = ds.Dataset(name="small", title="Small", folder="small", records="lines", cite="",
                         license="", hub=None, repository="o/r", commit="c" * 40, path="",
                         config=None, files=files)
    monkeypatch.setattr(ds, "catalogue", lambda: {"small": dataset})
    monkeypatch.setattr(ds.Dataset, "url", lambda self, f: (remote / self.folder / f.name).as_uri())
    home = tmp_path / "home"
    monkeypatch.setenv("HAGGLE_DATA_HOME", str(home))
    _online(monkeypatch)
    return remote, home


def _online(monkeypatch):
    """Downloads allowed (file:// URLs only here), whatever HF_HUB_OFFLINE the run has."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_catalogue_is_complete_and_pins_the_files():
    cat = ds.catalogue()
    assert list(cat) == ["craigslist", "deal-or-no-deal", "agreemate-results"]
    cb = cat["craigslist"]
    assert {f.part: f.records for f in cb.files} == {"test": 838, "validation": 597, "train": 5247}
    assert cb.hub == "stanfordnlp/craigslist_bargains"
    assert cb.url(cb.file("test")) == (
        "https://raw.githubusercontent.com/GeneralCoder365/agreemate/"
        "72365bab0bc01bb38481af065a743db91d4c486a/data/craigslist_bargains/raw/test.json")
    results = cat["agreemate-results"]
    assert len(results.files) == 90 and all(f.sha256 and f.records == 30 for f in results.files)
    assert "%2B" in results.url(results.files[0])  # '+' in the file names is quoted
    assert [f.name for f in cat["deal-or-no-deal"].files] == ["train.txt", "val.txt", "test.txt"]
    # every file is pinned by sha256 but the train split, which no copy here could be had of
    unpinned = [f.selector for c in cat.values() for f in c.files if not f.sha256]
    assert unpinned == ["craigslist:train"]


def test_the_pins_are_the_shared_copies():
    """The catalogue's sha256 and counts are those of the real files the tests use."""
    folder = shared_file("craigslist_bargains", "test.json").parents[1]
    for dataset in ds.catalogue().values():
        for f in dataset.files:
            path = folder / dataset.folder / f.name
            if f.sha256 is None and not path.exists():
                continue
            check = ds.check_file(dataset, f, path)
            assert check.ok, (f.selector, check.problem)


def test_select_by_name_split_or_all():
    assert [f.selector for _, f in ds.select(["craigslist:test"])] == ["craigslist:test"]
    assert len(ds.select(["deal-or-no-deal"])) == 3
    assert len(ds.select(["all", "craigslist"])) == 3 + 3 + 90  # no duplicates
    with pytest.raises(DataError, match="unknown dataset 'mars'.*craigslist, deal-or-no-deal"):
        ds.select(["mars"])
    with pytest.raises(DataError, match="has no file 'dev'"):
        ds.select(["craigslist:dev"])


def test_fetch_downloads_checks_and_keeps(small):
    remote, home = small
    cfg = parse_config({}, None)
    done = list(ds.fetch(cfg, ["small"]))
    assert [(a, c.ok, c.records, c.pinned) for a, c in done] == [
        ("downloaded", True, 3, True), ("downloaded", True, 2, False)]
    assert (home / "small" / "a.json").read_bytes() == (remote / "small" / "a.json").read_bytes()
    assert not list(home.rglob("*.part"))
    assert [a for a, _ in ds.fetch(cfg, ["small"])] == ["cached", "cached"]
    assert [a for a, _ in ds.fetch(cfg, ["small:test"], force=True)] == ["downloaded"]
    assert all(c.ok for c in ds.verify(cfg, ["small"]))


def test_a_download_that_does_not_check_out_is_not_kept(small):
    remote, home = small
    cfg = parse_config({}, None)
    (remote / "small" / "a.json").write_bytes(_lines(3, tag="changed"))  # same count, other bytes
    with pytest.raises(DataError, match=r"sha256 \w{12}\.\.\. is not the pinned .*not kept"):
        list(ds.fetch(cfg, ["small:test"]))
    (remote / "small" / "b.json").write_bytes(_lines(5))  # unpinned: the record count decides
    with pytest.raises(DataError, match="5 records, expected 2; the file was not kept"):
        list(ds.fetch(cfg, ["small:train"]))
    assert not (home / "small").exists() or not any((home / "small").iterdir())


def test_a_bad_cached_copy_is_fetched_again(small):
    _, home = small
    cfg = parse_config({}, None)
    (home / "small").mkdir(parents=True)
    (home / "small" / "a.json").write_bytes(b"{}\n")
    assert ds.verify(cfg, ["small:test"])[0].problem.startswith("sha256")
    assert [(a, c.ok) for a, c in ds.fetch(cfg, ["small:test"])] == [("downloaded", True)]


def test_unreachable_sources_and_offline_are_one_line_errors(small, monkeypatch):
    remote, _ = small
    cfg = parse_config({}, None)
    (remote / "small" / "a.json").unlink()
    with pytest.raises(DataError, match="download failed.*--from DIR") as err:
        list(ds.fetch(cfg, ["small:test"]))
    assert "\n" not in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (action, check), = ds.fetch(cfg, ["small:test"])
    assert action == "offline" and not check.present
    assert check.problem == ("not in the data cache and HF_HUB_OFFLINE=1 forbids downloads: "
                             "unset it, or use --from DIR")


def test_fetch_from_local_copies_works_offline(small, tmp_path, monkeypatch):
    remote, _ = small
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = parse_config({}, None)
    assert [a for a, _ in ds.fetch(cfg, ["small"], source=remote)] == ["copied", "copied"]
    (remote / "small" / "a.json").unlink()  # what --from lacks is reported; the rest goes on
    done = list(ds.fetch(cfg, ["small"], source=remote, force=True))
    assert [(a, c.ok) for a, c in done] == [("missing", False), ("copied", True)]
    assert done[0][1].problem == "not in --from (expected DIR/small/a.json)"


def test_locate_prefers_data_then_the_cache_then_says_how_to_get_it(small, tmp_path, monkeypatch):
    remote, home = small
    cfg = parse_config({}, None)
    with pytest.raises(DataError) as err:
        ds.locate(cfg, "small", "test")
    message = str(err.value)
    assert "\n" not in message
    assert "Small test split is not in the data cache" in message
    assert "`haggle data fetch small:test`" in message and "[data] craigslist_test" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="OFFLINE=1: run `haggle data fetch small:test` online"):
        ds.locate(cfg, "small", "test")
    list(ds.fetch(cfg, ["small:test"], source=remote))
    assert ds.locate(cfg, "small", "test") == str(home / "small" / "a.json")
    config_file = tmp_path / "cfg" / "config.toml"
    config_file.parent.mkdir()
    mine = parse_config({"data": {"craigslist_test": "mine.json"}}, config_file)
    with pytest.raises(DataError, match=r"\[data\] craigslist_test: .*mine.json is not a file"):
        ds.locate(mine, "small", "test")
    (config_file.parent / "mine.json").write_bytes(_lines(1))
    assert ds.locate(mine, "small", "test") == str(config_file.parent / "mine.json")


def test_the_real_sets_say_how_to_get_them(tmp_path, monkeypatch):
    _online(monkeypatch)
    cfg = parse_config({}, None)
    with pytest.raises(DataError, match=r"CraigslistBargains test split is not in the data cache "
                                        r".*`haggle data fetch craigslist:test`"):
        ds.locate(cfg, "craigslist", "test")
    with pytest.raises(DataError, match="AgreeMate's published runs are not in the data cache.*"
                                        "`haggle data fetch agreemate-results`, or set "
                                        r"\[data\] agreemate_results to a local folder$"):
        ds.locate_folder(cfg, "agreemate-results")
    folder = parse_config({"data": {"deal_or_no_deal": str(tmp_path)}}, None)
    (tmp_path / "val.txt").write_text("x\n")
    assert ds.locate(folder, "deal-or-no-deal", "validation") == str(tmp_path / "val.txt")


def _fake_hub(root: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A huggingface-hub cache holding ``files`` of dataset ``repo_id`` (main = one commit)."""
    sha = "0" * 40
    repo_dir = root / f"datasets--{repo_id.replace('/', '--')}"
    for name, data in files.items():
        target = repo_dir / "snapshots" / sha / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(sha)
    return root


def test_hf_values_in_data_go_through_the_hub_cache(small, tmp_path, monkeypatch):
    import huggingface_hub.constants

    export = _lines(3, tag="another writer")  # the same split written by another exporter
    cache = _fake_hub(tmp_path / "hub", "someone/cb", {"test.json": export})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = parse_config({"data": {"craigslist_test": "hf://datasets/someone/cb/test.json",
                                 "craigslist_train": "hf://datasets/someone/cb/train.json"}}, None)
    (action, check), (_, missing) = ds.fetch(cfg, ["small"])
    assert (action, check.ok, check.records, check.pinned) == ("hub", True, 3, False)
    assert check.path == "hf://datasets/someone/cb/test.json"
    assert not missing.present and "hf://datasets/someone/cb/train.json" in missing.problem
    assert [c.ok for c in ds.verify(cfg, ["small"])] == [True, False]


def test_the_command(small, capsys, tmp_path):
    remote, _ = small
    config = tmp_path / "config.toml"
    config.write_text("")
    assert main(["data", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "MISSING   small/a.json" in out and "0 of 2 file(s) check out" in out
    assert main(["data", "verify", "--present", "--config", str(config)]) == 0
    assert main(["data", "fetch", "small", "--from", str(remote), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "copied     small/a.json: 3 records, sha256 as pinned" in out
    assert "small/b.json: 2 records, sha256 not pinned" in out
    assert main(["data", "verify", "--config", str(config)]) == 0
    assert main(["data", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "small:test" in out and " ok " in out
    assert main(["data", "fetch", "mars", "--config", str(config)]) == 2
    assert "unknown dataset 'mars'" in capsys.readouterr().err


def test_the_real_files_fetch_from_a_local_copy(tmp_path, monkeypatch):
    """`haggle data fetch --from` with the real datasets, offline: every pinned file checks."""
    folder = shared_file("deal_or_no_deal", "val.txt").parents[1]
    monkeypatch.setenv("HAGGLE_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = parse_config({}, None)
    done = list(ds.fetch(cfg, ["craigslist:test", "deal-or-no-deal:validation"], source=folder))
    assert [(a, c.records, c.pinned) for a, c in done] == [("copied", 838, True),
                                                         ("copied", 1087, True)]
    assert ds.locate(cfg, "craigslist", "test") == str(tmp_path / "home" / "craigslist_bargains"
                                                     / "test.json")
    assert SHARED_DATA in folder.parents or folder == SHARED_DATA


def test_a_catalogue_entry_that_differs_is_caught(tmp_path):
    dataset = ds.catalogue()["craigslist"]
    f = replace(dataset.file("test"), records=839)
    path = tmp_path / "test.json"
    path.write_bytes(_lines(838))
    assert ds.check_file(dataset, replace(f, sha256=None), path).problem == \
        "838 records, expected 839"


def test_training_and_the_paper_runs_read_the_cache_or_say_how_to_get_it(tmp_path, monkeypatch):
    """`haggle train data`, `haggle import-agreemate` and --with-agreemate find the fetched
    copies with [data] empty, and say in one line what to fetch without them."""
    from training.pipeline import craigslist_ref, deal_file

    _online(monkeypatch)
    cfg = parse_config({}, None)
    with pytest.raises(DataError, match=r"`haggle data fetch craigslist:train`"):
        craigslist_ref(cfg, "train")
    with pytest.raises(DataError, match=r"`haggle data fetch deal-or-no-deal:validation`"):
        deal_file(cfg, "validation")
    assert main(["import-agreemate", "--db", str(tmp_path / "x.db")]) == 2
    home = tmp_path / "home"
    monkeypatch.setenv("HAGGLE_DATA_HOME", str(home))
    for folder, name, text in [("craigslist_bargains", "train.json", "{}\n"),
                               ("deal_or_no_deal", "val.txt", "x\n")]:
        (home / folder).mkdir(parents=True)
        (home / folder / name).write_text(text)
    assert craigslist_ref(cfg, "train") == str(home / "craigslist_bargains" / "train.json")
    assert deal_file(cfg, "validation") == home / "deal_or_no_deal" / "val.txt"
    assert craigslist_ref(cfg, "train", "mine.json") == "mine.json"  # --data wins


def test_experiment_with_agreemate_says_what_is_missing_before_it_plays(tmp_path, capsys):
    """Without the published runs, --with-agreemate stops at once, not after the grid."""
    db = tmp_path / "grid.db"
    code = main(["experiment", str(ds.Path(__file__).parents[1] / "examples" / "grid_cpu.toml"),
                 "--with-agreemate", "--db", str(db), "--no-progress"])
    assert code == 2 and not db.exists()
    assert "`haggle data fetch agreemate-results`" in capsys.readouterr().err
