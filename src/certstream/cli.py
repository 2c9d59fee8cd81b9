"""The ``certstream`` command: read and check the settings, then run gunicorn embedded.

A bad setting ends the start with one line on stderr naming the key, the value and what is
allowed, and exit status 2 (the usual status for a usage error); never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any

from certstream._version import __version__
from certstream.config import (
    RESOLVED_ENV,
    Settings,
    load_settings,
    settings_from_dict,
    settings_to_dict,
)
from certstream.demo.launch import DEMO_RATE
from certstream.errors import ConfigError

__all__ = ["main", "resolve_settings"]

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="certstream",
        description="Follow the Certificate Transparency logs and stream every new certificate "
        "over WebSocket and SSE.",
        epilog="Every setting is also a CERTSTREAM_* environment variable (see "
        "config.example.yaml).",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (default: "
                   "$CERTSTREAM_CONFIG, ./config.yaml, ./config.yml, /etc/certstream/config.yaml)")
    p.add_argument("--validate-config", action="store_true",
                   help="check the configuration, print OK or the error, and exit")
    p.add_argument("--workers", type=int, metavar="N", help="gunicorn worker processes")
    p.add_argument("--port", type=int, help="listen port")
    p.add_argument("--host", help="listen address")
    p.add_argument("--role", choices=("all", "ingest", "edge"),
                   help="all (one machine, the default), ingest (follow the logs, publish to "
                   "broker.url) or edge (serve clients from broker.url)")
    p.add_argument("--demo", action="store_true",
                   help="no internet needed: follow five local demo CT logs serving the "
                   "recorded entries packaged with certstream, growing at a steady rate")
    p.add_argument("--demo-rate", type=float, default=DEMO_RATE, metavar="N",
                   help=f"--demo: new entries per second, all demo logs together "
                   f"(default {DEMO_RATE:g})")
    p.add_argument("--version", action=_Version, nargs=0,
                   help="print the version and whether the compiled extensions are in use")
    return p


class _Version(argparse.Action):
    """``--version``: also says whether the compiled modules load (checked only when asked)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from certstream.buildinfo import extensions_line  # noqa: PLC0415 - imports _fast

        print(f"certstream {__version__} ({extensions_line()})")
        parser.exit()


def resolve_settings(args: argparse.Namespace) -> Settings:
    """Settings from file and environment, with the command-line overrides applied and
    validated like any other value."""
    # A resolved-settings variable inherited from another master must not decide this one.
    env = {k: v for k, v in os.environ.items() if k != RESOLVED_ENV}
    settings = load_settings(env, path=args.config)
    overrides: dict[str, Any] = {
        key: value for key, value in
        (("workers", args.workers), ("port", args.port), ("host", args.host),
         ("role", args.role))
        if value is not None
    }
    if overrides:
        settings = settings_from_dict(settings_to_dict(dataclasses.replace(settings, **overrides)))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        CertstreamApp(settings, overrides).run()
    except KeyboardInterrupt:  # Ctrl-C before gunicorn took over the signals
        return 130
    finally:
        if demo is not None:
            demo.stop()  # after the master's graceful stop (a no-op in forked workers)
    return 0
