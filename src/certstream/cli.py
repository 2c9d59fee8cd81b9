"""The ``certstream`` command: read and check the settings, then run gunicorn embedded.

Commands (argparse subcommands; none = serve)::

    certstream [-c FILE] [--port N] [--host H] [--workers N] [--process-model gunicorn|single]
               [--validate-config] [--demo]
    certstream [-c FILE] validate                    # check, print how each key was mapped
    certstream [-c FILE] create-index [-o FILE] [-f] # ct_index.json of the current tree sizes

The options and the two subcommands of certstream-server-go (``-c/--config``, ``-v``,
``validate``, ``create-index -o -f``) work as there, so its command lines carry over; a
subcommand also accepts ``-c`` after its name, as Go's do.

A bad setting ends the start with one line on stderr naming the key, the value and what is
allowed, and exit status 2 (the usual status for a usage error); never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from certstream._version import __version__
from certstream.config import (
    RESOLVED_ENV,
    LoadReport,
    Settings,
    load_settings_report,
    settings_from_dict,
    settings_to_dict,
)
from certstream.config.goformat import show_value
from certstream.demo.launch import DEMO_RATE
from certstream.errors import ConfigError

__all__ = ["COMMANDS", "load", "main", "resolve_settings"]

EXIT_CONFIG = 2

log = logging.getLogger("certstream.config")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="certstream",
        description="Follow the Certificate Transparency logs and stream every new certificate "
        "over WebSocket and SSE.",
        epilog="Every setting is also a CERTSTREAM_* environment variable (see "
        "config.example.yaml).",
    )
    _config_option(p)
    p.add_argument("--validate-config", action="store_true",
                   help="check the configuration, print OK or the error, and exit")
    p.add_argument("--workers", type=int, metavar="N", help="gunicorn worker processes")
    p.add_argument("--port", type=int, help="listen port")
    p.add_argument("--host", help="listen address")
    p.add_argument("--role", choices=("all", "ingest", "edge"),
                   help="all (one machine, the default), ingest (follow the logs, publish to "
                   "broker.url) or edge (serve clients from broker.url)")
    p.add_argument("--process-model", choices=("gunicorn", "single"),
                   help="gunicorn (a master supervising the workers, the default) or single "
                   "(one process, no master; needs ingest.mode: embedded and one worker)")
    p.add_argument("--demo", action="store_true",
                   help="no internet needed: follow five local demo CT logs serving the "
                   "recorded entries packaged with certstream, growing at a steady rate")
    p.add_argument("--demo-rate", type=float, default=DEMO_RATE, metavar="N",
                   help=f"--demo: new entries per second, all demo logs together "
                   f"(default {DEMO_RATE:g})")
    p.add_argument("-v", "--version", action=_Version, nargs=0,
                   help="print the version and whether the compiled extensions are in use")
    _add_commands(p)
    return p


class _Version(argparse.Action):
    """``--version``: also says whether the compiled modules load (checked only when asked)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from certstream.buildinfo import extensions_line  # noqa: PLC0415 - imports _fast

        print(f"certstream {__version__} ({extensions_line()})")
        parser.exit()


def load(args: argparse.Namespace) -> tuple[Settings, LoadReport]:
    """Settings from file and environment, with the command-line overrides applied and
    validated like any other value, and what the loader found to say about them."""
    # A resolved-settings variable inherited from another master must not decide this one.
    env = {k: v for k, v in os.environ.items() if k != RESOLVED_ENV}
    settings, report = load_settings_report(env, path=args.config)
    overrides: dict[str, Any] = {
        key: value for key, value in
        (("workers", args.workers), ("port", args.port), ("host", args.host),
         ("role", args.role), ("process_model", args.process_model))
        if value is not None
    }
    if overrides:
        settings = settings_from_dict(settings_to_dict(dataclasses.replace(settings, **overrides)))
    return settings, report


def resolve_settings(args: argparse.Namespace) -> Settings:
    """:func:`load`, with the loader's warnings logged."""
    settings, report = load(args)
    for line in report.warnings:
        log.warning("%s", line)
    return settings


# -- certstream-server-go's options and subcommands ----------------------------------------


def _config_option(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    # On a subcommand, an unset option must not overwrite the one given before its name.
    extra: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("-c", "--config", metavar="FILE", help="YAML config file, in certstream's "
                   "format or certstream-server-go's (default: $CERTSTREAM_CONFIG, "
                   "./config.yaml, ./config.yml, /etc/certstream/config.yaml)", **extra)


def _add_commands(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    validate = sub.add_parser(
        "validate", help="check the config file, print how each key was mapped, and exit",
        description="Check the configuration and print how each key was read (for a "
        "certstream-server-go file: what each of its keys became); exit 0, or 2 with the "
        "bad key named.")
    _config_option(validate, sub=True)
    index = sub.add_parser(
        "create-index", help="write certstream-server-go's ct_index.json of the current tree "
        "sizes", description="Fetch the tree head of every configured (and listed) log and "
        "write its size to a ct_index.json in certstream-server-go's format, to start each "
        "log at its current end.")
    _config_option(index, sub=True)
    index.add_argument("-o", "--out", metavar="FILE", help="the file to write (default: "
                       "ct_log.ct_index_file, Go's recovery.ct_index_file, else ct_index.json)")
    index.add_argument("-f", "--force", action="store_true",
                       help="replace the file if it exists")


def _validate(args: argparse.Namespace) -> int:
    try:
        _, report = load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    where = str(report.path) if report.path is not None else "no config file"
    if report.mapping is None:
        print(f"{where}: certstream's format")
    else:
        print(f"{where}: certstream-server-go's format; each key and what it became here:")
        rows = report.mapping.rows
        width = max(len(row.go_key) for row in rows)
        for row in rows:
            source = f" ({row.source})" if row.source in ("default", "env") else ""
            print(f"  {row.go_key:<{width}}  {show_value(row.value)}{source}  ->  {row.target}")
    for line in report.warnings:
        print(f"warning: {line}")
    print("OK")
    return 0


def _create_index(args: argparse.Namespace) -> int:
    try:
        settings = resolve_settings(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    from certstream.shell.createindex import create_index  # noqa: PLC0415 - gevent, HTTP

    out = args.out or settings.ct_log.ct_index_file or "ct_index.json"
    return create_index(settings, out, force=args.force)


#: Subcommand -> what runs it (no subcommand: serve).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _validate,
    "create-index": _create_index,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = COMMANDS.get(args.command)
    if command is not None:
        try:
            return command(args)
        except BrokenPipeError:  # ``certstream validate | head``: the reader has gone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    try:
        settings = resolve_settings(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.validate_config:
        print("OK")
        return 0
    # Imported only now: --validate-config must work without gunicorn's worker machinery.
    from certstream.demo.launch import DemoError, DemoProcess, start_demo  # noqa: PLC0415
    from certstream.shell.app import CertstreamApp, gunicorn_options, prepare_master  # noqa: PLC0415

    demo: DemoProcess | None = None
    try:
        if args.demo:
            try:
                settings, demo = start_demo(settings, args.demo_rate)
            except (ConfigError, DemoError) as exc:
                print(exc, file=sys.stderr)
                return EXIT_CONFIG if isinstance(exc, ConfigError) else 1
        settings = prepare_master(settings)
        # Flags given on this command line beat a ./gunicorn.conf.py as well.
        opts = gunicorn_options(settings)
        overrides = {key: opts[key] for key, flag in
                     (("bind", args.port), ("bind", args.host), ("workers", args.workers))
                     if flag is not None}
        if settings.process_model == "single":
            from certstream.shell.single import run_single  # noqa: PLC0415 - the worker's stack

            return run_single(settings, overrides)
        CertstreamApp(settings, overrides).run()
    except KeyboardInterrupt:  # Ctrl-C before gunicorn took over the signals
        return 130
    finally:
        if demo is not None:
            demo.stop()  # after the master's graceful stop (a no-op in forked workers)
    return 0
