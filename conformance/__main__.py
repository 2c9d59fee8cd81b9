"""``python -m conformance run|record``: the conformance harness against any certstream server.

``run`` starts the replay CT log with a recorded set, writes the server's config, starts the
server command, collects every stream and compares it with a peer's golden frames.  With
``--filter QUERY`` (repeatable) it also reads every stream with that server-side filter and
expects exactly the golden frames the filter selects (``conformance.filterref``).  Exit
status 0 when every frame matches (up to the allowed deviations), 1 when not, 2 when the
server could not be run.  ``record`` saves a server's frames in the golden layout.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import compare
from conformance.filterref import FilterQuery
from conformance.harness import HarnessError, RunOptions, capture, set_names
from conformance.record import record
from conformance.serverconfig import STYLES
from conformance.verdict import format_verdict, judge

EXIT_OK, EXIT_DIFFERENT, EXIT_CANNOT_RUN = 0, 1, 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server-cmd",
        required=True,
        metavar="CMD",
        help="command line that starts the server; {config} and {port} are replaced by the "
        "config file the harness wrote and the port it chose",
    )
    style = p.add_mutually_exclusive_group()
    style.add_argument(
        "--config-style",
        choices=STYLES,
        default="certstream",
        help="config format to write: ours, or certstream-server-go's (default certstream)",
    )
    style.add_argument(
        "--config-template",
        type=Path,
        metavar="FILE",
        help="for any other server: a config file with {port}, {config} and {logs_json}",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=compare.DATA,
        help="corpus laid out as inputs/<set>/manifest.json and golden/<peer>/<set>/ "
        "(default: the sets this project ships)",
    )
    p.add_argument("--settle", type=float, default=1.0, metavar="S",
                   help="seconds between connecting the clients and opening the logs (1)")
    p.add_argument("--quiet", type=float, default=1.0, metavar="S",
                   help="once every stream has its frames, stop after this long without one (1)")
    p.add_argument("--idle", type=float, default=10.0, metavar="S",
                   help="stop after this long without any frame (10)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="longest collection per set (120)")
    p.add_argument("--startup", type=float, default=60.0, metavar="S",
                   help="longest wait for the server's port to answer (60)")
    p.add_argument("--keep-workdir", type=Path, metavar="DIR",
                   help="run the server in DIR and keep it (config, server.log)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m conformance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="compare a server's frames with a peer's goldens")
    _common(run)
    run.add_argument("--peer", default="go",
                     help="whose goldens to compare with: go, calidog, rust, or any peer "
                     "under <root>/golden (default go)")
    run.add_argument("--set", action="append", dest="sets", metavar="NAME",
                     help="set to run (repeatable; default every set the peer has goldens for)")
    transport = run.add_mutually_exclusive_group()
    transport.add_argument("--sse", action="store_const", dest="transport", const="sse",
                           help="read the SSE variants (/sse?stream=...) instead of WebSocket")
    transport.add_argument("--transport", choices=("ws", "sse", "both"), default="ws",
                           help="ws (default), sse, or both in one server run")
    run.add_argument("--limit", type=int, default=20, metavar="N",
                     help="differences listed per kind and stream (20)")
    run.add_argument("--filter", action="append", dest="filters", default=[], metavar="QUERY",
                     help="also read every stream with this server-side filter (e.g. "
                     "'domain=*.example.com&issuer=encrypt') and expect exactly the golden "
                     "frames it selects; repeatable (each filter's verdict is printed before "
                     "the unfiltered one)")
    rec = sub.add_parser("record", help="save a server's frames in the golden layout")
    _common(rec)
    rec.add_argument("--peer", required=True, help="name of the peer the goldens are for")
    rec.add_argument("--set", required=True, dest="sets", action="append", metavar="NAME")
    rec.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="root to write golden/<peer>/<set>/ into (inputs are copied)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    transports = {"ws": ("ws",), "sse": ("sse",), "both": ("ws", "sse")}
    options = RunOptions(
        server_cmd=args.server_cmd,
        root=args.root,
        config_style=args.config_style,
        config_template=args.config_template,
        transports=transports[getattr(args, "transport", None) or "ws"],
        settle=args.settle,
        quiet=args.quiet,
        idle=args.idle,
        timeout=args.timeout,
        startup=args.startup,
        keep=args.keep_workdir,
        filters=tuple(getattr(args, "filters", None) or ()),
    )
    if args.config_template is not None and not args.config_template.is_file():
        print(f"conformance: no config template at {args.config_template}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        if args.command == "record":
            for set_name in args.sets:
                folder = record(options, set_name, args.peer, args.out)
                print(f"recorded {args.peer}/{set_name} in {folder}")
            return EXIT_OK
        return _run(options, args.peer, args.sets, args.limit)
    except HarnessError as exc:
        print(f"conformance: cannot run the server: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def _run(options: RunOptions, peer: str, sets: list[str] | None, limit: int) -> int:
    available = set_names(options.root, peer)
    wanted = sets or available
    unknown = [s for s in wanted if s not in available]
    if unknown or not wanted:
        print(
            f"conformance: {options.root} has no goldens of {peer!r} for "
            f"{', '.join(unknown) or 'any set'} (it has: {', '.join(available) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    try:
        queries = {q: FilterQuery.parse(q) for q in options.filters}
    except (ValueError, re.error) as exc:
        print(f"conformance: --filter: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    status = EXIT_OK
    for set_name in wanted:
        golden = compare.load_golden(peer, set_name, options.root)
        expected = len(golden.frames["lite"])
        filtered = {q: sum(map(f.matches_text, golden.frames["lite"]))
                    for q, f in queries.items()}
        cap = capture(options, set_name, expected, peer, filtered)
        verdicts = [
            judge(peer, set_name, cap.of_filter(q), options.root, select=f.matches_text,
                  query=q)
            for q, f in queries.items()
        ]
        verdicts.append(judge(peer, set_name, cap, options.root))
        for verdict in verdicts:
            print(format_verdict(verdict, limit=limit), flush=True)
            if not verdict.ok:
                status = EXIT_DIFFERENT
    return status


if __name__ == "__main__":
    raise SystemExit(main())
