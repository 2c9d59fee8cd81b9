"""The spec's Prometheus series (certstream-server-rust's names, as its documentation lists
them), written beside ours at every scrape.

An operator's dashboards and alerts use the spec's sample names exactly as written:
``certstream_messages_sent``, not ``certstream_messages_sent_total``.  prometheus_client
always writes a counter's samples with ``_total``, so the spec's series are not
prometheus_client counters.  The processes record what they need either in our own metrics
(``shell.metrics``) or in hidden ones named ``certstream_spec_*`` (stored like every other
metric: in-process, or in the multiprocess files of a deployment, so the ingest's and the
master's values reach any worker's scrape), and :func:`exposition` writes the spec's series
at scrape time in the text format the spec's server emits (``# TYPE certstream_messages_sent
counter`` and ``certstream_messages_sent{log="..."} 40``), summed over every process that
recorded them.  The hidden metrics are left out of the page; ours are written as before.

Each series, its type, and what it counts (made from):

* ``certstream_messages_sent{log}`` (counter): certificates of that log published to the
  workers, which happens when some client listens, as in the spec (``certstream_entries``).
* ``certstream_parse_failures{log}`` (counter): entries of an RFC 6962 log skipped because
  they could not be decoded or parsed; ``certstream_static_ct_parse_failures{log}`` the same
  for static-ct-api logs.
* ``certstream_worker_panics`` (counter): log followers restarted after a crash in the
  ingest, plus ingest processes and gunicorn workers that died and were started again
  (``certstream_restarts{process}``, counted by the ingest and by the gunicorn master).
* ``certstream_ct_logs_count``, ``certstream_static_ct_logs_count`` (gauges): logs followed.
* ``certstream_static_ct_tiles_fetched{log}``, ``certstream_static_ct_entries_parsed{log}``
  (counters): data tiles fetched, and the entries read from them.
* ``certstream_static_ct_checkpoint_errors{log}`` (counter): checkpoints that could not be
  fetched, did not parse or verify, shrank or forked.
* ``certstream_issuer_cache_size`` (gauge): issuer certificates cached for static logs.
* ``certstream_duplicates_filtered`` (counter): certificates the dedup dropped
  (``certstream_duplicates``); ``certstream_dedup_cache_size`` (gauge) the fingerprints it
  holds (``certstream_dedup_size``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

from prometheus_client import Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric

__all__ = [
    "CHECKPOINT_ERRORS",
    "CT_LOGS",
    "ISSUER_CACHE",
    "PARSE_FAILURES",
    "RESTARTS",
    "STATIC_CT_LOGS",
    "STATIC_ENTRIES_PARSED",
    "STATIC_PARSE_FAILURES",
    "TILES_FETCHED",
    "IngestMetrics",
    "exposition",
]

_HIDDEN = "certstream_spec_"

# -- ours -------------------------------------------------------------------------------------

RESTARTS = Counter(
    "certstream_restarts", "Restarts after a crash: of a log follower in the ingest "
    "(process=follower), of the ingest process (ingest), of a gunicorn worker that died "
    "(worker).", ["process"])

# -- hidden: written only as the spec's series ---------------------------------------------

PARSE_FAILURES = Counter(_HIDDEN + "parse_failures", "RFC 6962 entries skipped.", ["log"])
STATIC_PARSE_FAILURES = Counter(
    _HIDDEN + "static_ct_parse_failures", "Static-ct entries skipped.", ["log"])
TILES_FETCHED = Counter(_HIDDEN + "static_ct_tiles_fetched", "Data tiles fetched.", ["log"])
STATIC_ENTRIES_PARSED = Counter(
    _HIDDEN + "static_ct_entries_parsed", "Entries read from tiles.", ["log"])
CHECKPOINT_ERRORS = Counter(
    _HIDDEN + "static_ct_checkpoint_errors", "Failed checkpoints.", ["log"])
CT_LOGS = Gauge(_HIDDEN + "ct_logs_count", "RFC 6962 logs followed.",
                multiprocess_mode="livemostrecent")
STATIC_CT_LOGS = Gauge(_HIDDEN + "static_ct_logs_count", "Static-ct logs followed.",
                       multiprocess_mode="livemostrecent")
ISSUER_CACHE = Gauge(_HIDDEN + "issuer_cache_size", "Issuers cached.",
                     multiprocess_mode="livemostrecent")

# -- the spec's series: (name, type, help, source family, labels kept) --------------------------

_SERIES = (
    ("certstream_messages_sent", "counter",
     "Certificates published to clients, by log.", "certstream_entries", ("log",)),
    ("certstream_parse_failures", "counter",
     "Entries of RFC 6962 logs skipped because they could not be parsed, by log.",
     _HIDDEN + "parse_failures", ("log",)),
    ("certstream_worker_panics", "counter",
     "Workers restarted after a crash (log followers, the ingest, gunicorn workers).",
     "certstream_restarts", ()),
    ("certstream_ct_logs_count", "gauge", "RFC 6962 logs followed.",
     _HIDDEN + "ct_logs_count", ()),
    ("certstream_static_ct_logs_count", "gauge", "Static CT logs followed.",
     _HIDDEN + "static_ct_logs_count", ()),
    ("certstream_static_ct_tiles_fetched", "counter", "Static CT data tiles fetched, by log.",
     _HIDDEN + "static_ct_tiles_fetched", ("log",)),
    ("certstream_static_ct_entries_parsed", "counter",
     "Entries parsed from static CT tiles, by log.", _HIDDEN + "static_ct_entries_parsed",
     ("log",)),
    ("certstream_static_ct_parse_failures", "counter",
     "Entries of static CT logs skipped because they could not be parsed, by log.",
     _HIDDEN + "static_ct_parse_failures", ("log",)),
    ("certstream_static_ct_checkpoint_errors", "counter",
     "Static CT checkpoints that could not be fetched or were refused, by log.",
     _HIDDEN + "static_ct_checkpoint_errors", ("log",)),
    ("certstream_issuer_cache_size", "gauge", "Issuer certificates cached for static CT logs.",
     _HIDDEN + "issuer_cache_size", ()),
    ("certstream_duplicates_filtered", "counter",
     "Certificates not sent again because the dedup had seen them.", "certstream_duplicates",
     ()),
    ("certstream_dedup_cache_size", "gauge", "Certificate fingerprints held by the dedup.",
     "certstream_dedup_size", ()),
)
_SOURCES = frozenset(source for *_, source, _keep in _SERIES)


class IngestMetrics:
    """Ours (``shell.metrics``) and the hidden ones above by attribute name, as one object:
    what the ingest hands the pipeline and its followers (``Pipeline.inc("ENTRIES", ...)``,
    ``Pipeline.inc("TILES_FETCHED", ...)``)."""

    def __init__(self, *modules: ModuleType) -> None:
        self._modules = modules

    def __getattr__(self, name: str) -> Any:
        for module in self._modules:
            value = getattr(module, name, None)
            if value is not None:
                return value
        raise AttributeError(name)


class _Families:
    """Metric families already collected, as a collector for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(families: dict[str, Metric]) -> Iterator[str]:
    for name, kind, text, source, keep in _SERIES:
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        family = families.get(source)
        for sample in family.samples if family is not None else ():
            if family is not None and family.type == "counter" and \
                    not sample.name.endswith("_total"):
                continue  # _created
            sums[tuple(sample.labels.get(k, "") for k in keep)] += sample.value
        if not keep and not sums:
            sums[()] = 0.0  # an unlabelled series is always there, from zero
        yield f"# HELP {name} {text}\n# TYPE {name} {kind}\n"
        for values, total in sorted(sums.items()):
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(keep, values, strict=True))
            yield f"{name}{{{labels}}} {_number(total)}\n" if labels else \
                f"{name} {_number(total)}\n"


def exposition(collector: Any) -> bytes:
    """The Prometheus text of every metric ``collector`` (a registry) holds, ours as
    prometheus_client writes them and then the spec's series, from one collection."""
    ours: list[Metric] = []
    sources: dict[str, Metric] = {}
    for family in collector.collect():
        if family.name in _SOURCES:
            sources[family.name] = family
        if not family.name.startswith(_HIDDEN):
            ours.append(family)
    return generate_latest(_Families(ours)) + "".join(_series(sources)).encode("utf-8")
