"""``role: ingest``: an ingest process that follows the logs only while it holds the lease.

Several ingest nodes may run; each is a standby until it takes the lease (``shell.lease``),
then leads for one *term*: it reads the numbering and every log's position from Redis
(``brokerpub.load_takeover``), starts an ingest (followers, dedup, builder: the same as on
one machine) whose publisher is a ``BrokerPublisher``, and renews the lease every quarter
of ``broker.lease_ms``.  The term ends when a renewal or a publish is refused (another ingest
took over: this one was paused or cut off past its lease), and the node stops its
followers at once and stands by again; or at a clean stop, when it releases the lease so
that a standby takes over without waiting for it to expire.

A standby follows no log and writes nothing.  It polls the lease every half ``lease_ms``
and takes it only when it found it free at two polls in a row (see ``shell.lease``).

Redis unreachable: the standby keeps polling; the leader keeps its lease as long as Redis
says it holds it when it comes back (its queued records wait for it, see ``brokerpub``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol

import gevent
import gevent.event

from certstream.config import Settings
from certstream.shell import brokermetrics as bm
from certstream.shell.brokerpub import BrokerPositions, BrokerPublisher, load_takeover
from certstream.shell.lease import RENEW_LOST, RENEW_TAKEN_BACK, Lease
from certstream.shell.redisconn import ACQUIRE_AFTER_FREE, Keys, RedisError, connect

__all__ = ["IngestNode", "Term"]

log = logging.getLogger("certstream.broker")

MASTER_PID_ENV = "CERTSTREAM_MASTER_PID"


class Term(Protocol):
    """What a node needs of the ingest it runs while leading (``shell.ingest.Ingest``)."""

    stopping: gevent.event.Event

    def start(self) -> None: ...
    def stop(self) -> None: ...


MakeTerm = Callable[[BrokerPublisher, BrokerPositions], Term]


class IngestNode:
    """See the module doc."""

    def __init__(self, settings: Settings, make_term: MakeTerm) -> None:
        self.settings = settings
        self.make_term = make_term
        self.broker = settings.broker
        self.keys = Keys(self.broker.key_prefix)
        self.stopping = gevent.event.Event()
        self.client = connect(self.broker.url)
        self.lease = Lease(self.client, self.keys, self.broker.lease_ms)
        self.terms = 0
        self.publisher: BrokerPublisher | None = None

    def run(self) -> None:
        master = os.environ.get(MASTER_PID_ENV, "")
        watchdog = gevent.spawn(self._watchdog, int(master)) if master.isdigit() else None
        poll = self.broker.lease_ms / 2000.0
        free = 0
        bm.BROKER_LEADER.set(0)
        log.info("ingest node %s: standing by for the lease (%s)", self.lease.name,
                 self.broker.url.rpartition("@")[2])
        while not self.stopping.is_set():
            try:
                free = free + 1 if self.lease.holder() is None else 0
                if free >= ACQUIRE_AFTER_FREE and self.lease.try_acquire():
                    free = 0
                    self._lead()
                    continue
            except RedisError as exc:
                bm.BROKER_ERRORS.labels("ingest").inc()
                log.warning("ingest node: broker unreachable (%s); standing by", exc)
                free = 0
            self.stopping.wait(poll)
        if watchdog is not None:
            watchdog.kill(block=False)

    def _lead(self) -> None:
        takeover = load_takeover(self.client, self.keys)
        self.terms += 1
        log.info("ingest node %s: leading (term %d): record %d of epoch %d%s, %d log positions "
                 "from the broker", self.lease.name, self.terms, takeover.seq, takeover.epoch,
                 " (new numbering)" if takeover.fresh else "", len(takeover.positions))
        publisher = self.publisher = BrokerPublisher(self.client, self.keys, self.lease,
                                                     self.broker, takeover)
        positions = BrokerPositions(self.settings.ct_log.state_file, takeover, publisher)
        term = self.make_term(publisher, positions)
        term.start()
        renew_every = self.broker.lease_ms / 4000.0
        while not (self.stopping.is_set() or publisher.lost.is_set()):
            gevent.wait([self.stopping, publisher.lost, term.stopping], timeout=renew_every,
                        count=1)
            if term.stopping.is_set():  # the master is gone
                self.stopping.set()
            if self.stopping.is_set() or publisher.lost.is_set():
                break
            try:
                renewed = self.lease.renew(publisher.epoch, publisher.confirmed_seq)
            except RedisError as exc:
                bm.BROKER_ERRORS.labels("ingest").inc()
                log.debug("ingest node: renewing the lease failed: %s", exc)
                continue  # Redis decides when it is back: the publish script checks the token
            if renewed == RENEW_LOST:
                publisher.refuse("renew", self._holder())
            elif renewed == RENEW_TAKEN_BACK:
                log.warning("ingest node: the lease was free (Redis restarted?); took it back")
                publisher.restore_soon()
        lost = publisher.lost.is_set()
        term.stop()
        if lost:
            log.warning("ingest node %s: stepped down (%s); standing by", self.lease.name,
                        publisher.lost_reason)
            return
        try:
            self.lease.release()
        except RedisError as exc:
            log.warning("ingest node: could not release the lease (%s); it expires in %d ms",
                        exc, self.broker.lease_ms)

    def _holder(self) -> str:
        try:
            return self.lease.holder() or ""
        except RedisError:
            return "?"

    def _watchdog(self, master_pid: int) -> None:
        while os.getppid() == master_pid:
            gevent.sleep(1.0)
        log.warning("parent process %d is gone; stopping", master_pid)
        self.stopping.set()
