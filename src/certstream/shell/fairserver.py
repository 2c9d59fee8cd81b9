"""``FairStreamServer``: gevent's ``StreamServer`` that asks the connection shares before
each accept, so that a crowd connecting at once spreads over the workers."""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.server import StreamServer

from certstream.shell.shares import ConnectionShares

__all__ = ["FairStreamServer"]


class FairStreamServer(StreamServer):  # type: ignore[misc]  # gevent's server is untyped
    """A ``StreamServer`` that leaves a connection to a less loaded worker while ``shares``
    says this one is ahead, and looks again ``shares.RETRY_SECS`` later."""

    shares: ConnectionShares | None = None
    #: The pending "look again" timer (our own: gevent's ``_timer`` is private).
    _retry: Any = None

    def do_read(self) -> Any:
        shares = self.shares
        if shares is not None and not shares.may_accept(time.monotonic()):
            # Leave the connection to a less loaded worker; look again shortly (the same
            # pause gevent itself takes after an accept error).
            self.stop_accepting()
            self._retry = gevent.get_hub().loop.timer(shares.RETRY_SECS)
            self._retry.start(self._look_again)
            return None
        args = super().do_read()
        if args and shares is not None:
            shares.opened()
        return args

    def stop_accepting(self) -> None:
        super().stop_accepting()
        self._cancel_retry()

    def _look_again(self) -> None:
        self._cancel_retry()
        if self.started:  # not closed or stopped meanwhile
            self.start_accepting()

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.stop()
            retry.close()
