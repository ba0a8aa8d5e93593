"""`spin-bench-report RUNS_OR_STUDY_DIR [...] [--out DIR] [--html]`: the report of any runs, studies or run
directories (spin_bench/analysis/report.py), without Jupyter."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spin_bench.paths import configure_environment


def main(argv: list[str] | None = None) -> int:
    """Exit 0 with the report written, 2 on bad input (one line on stderr, nothing written)."""
    parser = argparse.ArgumentParser(prog="spin-bench-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="runs/, study or run directories")
    parser.add_argument("--out", type=Path, help="output directory (default: the one directory given)")
    parser.add_argument("--html", action="store_true", help="also write report.html with the figures embedded")
    args = parser.parse_args(argv)
    if args.out is None and len(args.paths) > 1:
        parser.error("--out is required with several directories")
    # matplotlib's cache in the project, as the CLI keeps it
    configure_environment(Path(os.environ.get("SPIN_BENCH_ROOT", ".")) / ".cache", offline=True)
    from spin_bench.analysis.report import render, write_files

    try:
        table, files = render(args.paths, args.html)
    except ValueError as err:
        print(f"spin-bench-report: error: {err}", file=sys.stderr)
        return 2
    out = args.out or args.paths[0]
    write_files(out, files)
    print(f"{table}\n\nwrote {', '.join(str(out / name) for name in sorted(files))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
