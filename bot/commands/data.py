"""`haggle data`: list, fetch and verify the datasets (bot/data_sources.py).

    haggle data list                        # every dataset file: where it is read from, present?
    haggle data fetch craigslist            # download into the data cache, checked, then kept
    haggle data fetch all --from DIR        # the same from local copies (DIR/FOLDER/FILE)
    haggle data verify                      # sha256 and record counts of what commands read
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data", help="list, fetch and verify the datasets (CraigslistBargains, Deal or No Deal, "
                     "AgreeMate's runs)",
        description="The datasets haggle reads beside its shipped scenarios. `fetch` downloads "
                    "them from their pinned public sources into the data cache "
                    "($HAGGLE_DATA_HOME, default ~/.cache/haggle/datasets), checking sha256 and "
                    "record counts before keeping a file; HF_HUB_OFFLINE=1 stops downloads. "
                    "A [data] value in config.toml (a local path or hf:// reference) takes the "
                    "place of the cached copy.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    names_help = "craigslist, deal-or-no-deal, agreemate-results, NAME:SPLIT " \
                 "(e.g. craigslist:test) or all"
    ls = actions.add_parser("list", help="every dataset file, where it is read from, and whether "
                                         "it is there")
    ls.set_defaults(func=run_list)
    fetch = actions.add_parser("fetch", help="download datasets into the data cache (checked)")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=names_help)
    fetch.add_argument("--from", dest="source", metavar="DIR",
                       help="copy from local copies laid out as DIR/FOLDER/FILE (e.g. "
                            "DIR/craigslist_bargains/test.json) instead of downloading")
    fetch.add_argument("--force", action="store_true",
                       help="fetch again even if the cached copy checks out")
    fetch.set_defaults(func=run_fetch)
    verify = actions.add_parser("verify", help="check sha256 and record counts of what the "
                                               "commands read; exit 1 on any problem")
    verify.add_argument("names", nargs="*", default=["all"], metavar="NAME", help=names_help)
    verify.add_argument("--present", action="store_true",
                        help="check only the files that are there (missing ones are no error)")
    verify.set_defaults(func=run_verify)
    for action in (p, ls, fetch, verify):  # before or after the action: `data verify --config X`
        nested = action is not p
        action.add_argument("--config", metavar="PATH",
                            default=argparse.SUPPRESS if nested else None,
                            help="config file (default: $HAGGLE_CONFIG, ./config.toml, the repo's)")
        action.add_argument("-v", "--verbose", action="count",
                            default=argparse.SUPPRESS if nested else 0,
                            help="more logging (-vv for debug)")


def _shown(path: str) -> str:
    """A path as the user would type it: relative to here, or to ~, when inside them."""
    p = Path(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(p.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return path


def run_list(args: argparse.Namespace) -> int:
    from bot import data_sources as ds
    from bot.commands._common import resolve_config

    cfg = resolve_config(args)
    print(f"data cache: {_shown(str(ds.data_home()))}"
          + ("  (HF_HUB_OFFLINE=1: no downloads)" if ds.offline() else ""))
    for name, dataset in ds.catalogue().items():
        hub = f"; card: https://huggingface.co/datasets/{dataset.hub}" if dataset.hub else ""
        print(f"\n{name}: {dataset.title}. Cite {dataset.cite}. License: {dataset.license}")
        print(f"  source: github.com/{dataset.repository} @ {dataset.commit[:12]}, "
              f"{dataset.path}{hub}")
        checks = ds.verify(cfg, [name])
        present = sum(c.present for c in checks)
        if len(dataset.files) > 4:  # a folder of many files: one line
            where = {Path(c.path).parent for c in checks if not c.path.startswith("hf://")}
            print(f"  {present}/{len(checks)} files present in "
                  + ", ".join(_shown(str(w)) for w in sorted(where)))
            continue
        for f, c in zip(dataset.files, checks, strict=True):
            state = "ok" if c.ok else c.problem
            print(f"  {f.selector:<26} {f.records:>6} records  {state:<8} "
                  f"{c.path if c.path.startswith('hf://') else _shown(c.path)}")
    return 0


def _line(action: str, check) -> str:
    pinned = "sha256 as pinned" if check.pinned else "sha256 not pinned"
    where = check.path if check.path.startswith("hf://") else _shown(check.path)
    return (f"{action:<10} {check.dataset}/{check.file}: {check.records} records, {pinned} "
            f"({check.sha256 or '-'}) -> {where}")


def run_fetch(args: argparse.Namespace) -> int:
    from bot import data_sources as ds
    from bot.commands._common import resolve_config
    from bot.errors import DataError

    cfg = resolve_config(args)
    source = Path(args.source).expanduser() if args.source else None
    if source is not None and not source.is_dir():
        raise DataError(f"--from {args.source}: not a folder")
    failed = 0
    for action, check in ds.fetch(cfg, args.names, source=source, force=args.force):
        if check.ok:
            print(_line(action, check))
        else:
            failed += 1
            print(f"{action:<10} {check.dataset}/{check.file}: {check.problem} "
                  f"({check.path if check.path.startswith('hf://') else _shown(check.path)})")
    if failed:
        print(f"{failed} file(s) not fetched")
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    from bot import data_sources as ds
    from bot.commands._common import resolve_config

    cfg = resolve_config(args)
    checks = ds.verify(cfg, args.names, missing_ok=args.present)
    bad = [c for c in checks if not c.ok]
    for c in checks:
        if c.ok:
            print(f"ok        {c.dataset}/{c.file}: {c.records} records"
                  + (", sha256 as pinned" if c.pinned else ", sha256 not pinned"))
        else:
            print(f"{'MISSING' if not c.present else 'BAD':<9} {c.dataset}/{c.file}: {c.problem} "
                  f"({c.path if c.path.startswith('hf://') else _shown(c.path)})")
    hint = "; get the missing ones with `haggle data fetch NAME`"
    print(f"{len(checks) - len(bad)} of {len(checks)} file(s) check out"
          + (hint if any(not c.present for c in bad) else ""))
    return 1 if bad else 0
