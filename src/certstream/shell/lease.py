"""The leading ingest's lease in Redis: at most one ingest publishes at a time.

``SET <p>:lease <token> NX PX <lease_ms>`` takes it; the holder renews it every quarter of
``lease_ms`` with a script that checks the token (``redisconn.RENEW``).  The lease alone
cannot stop a leader that was paused past its expiry (``kill -STOP``, a long GC, a VM
migration) from publishing once it runs again, so every publish goes through a script that
checks the token in the same atomic step as its writes (``redisconn.PUBLISH``): such a
leader's first publish is refused and it steps down.  No split brain, no duplicates.

A free lease after a Redis restart is taken back by the leader that had it, if nobody
published since; standbys take a free lease only after finding it free at two polls in a
row (``ACQUIRE_AFTER_FREE``), which gives that leader the first chance.
"""

from __future__ import annotations

import logging
import secrets

import redis

from certstream.shell.redisconn import RENEW, Keys, node_name

__all__ = ["RENEWED", "RENEW_LOST", "RENEW_TAKEN_BACK", "Lease"]

log = logging.getLogger("certstream.broker")

RENEW_LOST, RENEWED, RENEW_TAKEN_BACK = 0, 1, 2


class Lease:
    """One ingest's claim on the lease (its token is new for each process)."""

    def __init__(self, client: redis.Redis, keys: Keys, lease_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.lease_ms = lease_ms
        self.name = node_name()
        self.token = f"{self.name}#{secrets.token_hex(6)}"
        self._renew = client.register_script(RENEW)

    def holder(self) -> str | None:
        """The token of whoever holds the lease now, or None."""
        value = self.client.get(self.keys.lease)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else None

    def try_acquire(self) -> bool:
        return bool(self.client.set(self.keys.lease, self.token, nx=True, px=self.lease_ms))

    def renew(self, epoch: int, seq: int) -> int:
        """``RENEWED``, ``RENEW_TAKEN_BACK`` (it was free and nobody published after our
        record ``seq`` of ``epoch``) or ``RENEW_LOST``."""
        return int(self._renew(keys=[self.keys.lease, self.keys.meta],
                               args=[self.token, self.lease_ms, epoch, seq]))

    def release(self) -> None:
        """Give the lease up at a clean stop, if it is still ours."""
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(self.keys.lease)  # type: ignore[no-untyped-call]
                if pipe.get(self.keys.lease) == self.token.encode():
                    pipe.multi()
                    pipe.delete(self.keys.lease)
                    pipe.execute()
            except redis.WatchError:
                pass  # it changed hands meanwhile: not ours to delete
