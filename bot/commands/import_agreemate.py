"""`haggle import-agreemate`: the AgreeMate paper's published runs as reference tournaments.

    haggle data fetch agreemate-results       # the 90 CSVs (GeneralCoder365/agreemate, results/)
    haggle import-agreemate --db haggle.db    # imports them ([data] agreemate_results or the cache)
    haggle import-agreemate FOLDER --write-scenarios bot/data/agreemate_scenarios.json

Each result CSV (``<buyer>+<seller>[_updated].csv``, see docs/paper.md) becomes the
tournament ``agreemate/<file stem>``; every metric is recomputed with our definitions from the
run's prices, actions, targets and outcome. Malformed rows are skipped and reported with their
line. Importing a file again adds nothing. ``--write-scenarios`` rebuilds the shipped scenario
set (the paper's 30 scenarios) from the CSVs instead of importing them. The code is
bot/agreemate.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-agreemate", help="import AgreeMate result CSVs as reference tournaments",
        description="Import the AgreeMate paper's result CSVs (files, or folders of them) as "
                    "reference tournaments named after each file, with every metric recomputed.")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="result CSV files, or folders whose *.csv files are imported (default: "
                        "[data] agreemate_results, else `haggle data fetch agreemate-results`'s "
                        "copy in the data cache)")
    p.add_argument("--db", metavar="PATH", help="the database (default [store] path)")
    p.add_argument("--prefix", default="agreemate/",
                   help="tournament name prefix (default agreemate/)")
    p.add_argument("--write-scenarios", metavar="JSON",
                   help="instead of importing, write the scenarios the CSVs ran to JSON (the "
                        "shipped bot/data/agreemate_scenarios.json is made this way)")
    p.set_defaults(func=run)


def expand_files(items: list[str]) -> list[Path]:
    """Files as given; folders become their *.csv files (sorted). Missing paths are errors."""
    from bot.errors import DataError

    files = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise DataError(f"{path} holds no *.csv files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist; pass AgreeMate result CSVs or their folder")
    return list(dict.fromkeys(files))


async def _import(args: argparse.Namespace, files: list[Path]) -> int:
    from bot.agreemate import import_agreemate
    from bot.commands._common import resolve_config
    from bot.store import Store

    cfg = resolve_config(args)
    db = args.db or cfg.resolve_path(cfg.store.path)
    total_added = total_rows = total_skipped = 0
    async with await Store.open(db) as store:
        for path in files:
            result = await import_agreemate(store, path, cfg, prefix=args.prefix)
            total_added += result.added
            total_rows += result.rows
            total_skipped += len(result.skipped)
            status = f"{result.added} new" if result.added else "already imported"
            print(f"{result.name}: {result.rows} rows, {status}"
                  + (f", {len(result.skipped)} malformed row(s) skipped" if result.skipped else ""))
            for skipped in result.skipped:
                print(f"  {path.name} line {skipped.line}: skipped: {skipped.reason}",
                      file=sys.stderr)
    print(f"{len(files)} file(s), {total_rows} rows: {total_added} negotiations stored in {db}, "
          f"{total_skipped} malformed row(s) skipped")
    return 0


def run(args: argparse.Namespace) -> int:
    from bot.agreemate import parse_agreemate_name, write_agreemate_scenarios

    if not args.files:
        from bot.commands._common import resolve_config
        from bot.data_sources import locate_folder

        args.files = [str(locate_folder(resolve_config(args), "agreemate-results"))]
    files = expand_files(args.files)
    for path in files:  # every name checked before anything is written
        parse_agreemate_name(path)
    if args.write_scenarios:
        count = write_agreemate_scenarios(files, args.write_scenarios)
        print(f"wrote {count} scenarios from {len(files)} file(s) to {args.write_scenarios}")
        return 0
    return asyncio.run(_import(args, files))
