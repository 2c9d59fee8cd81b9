"""The spec's series under their exact sample names, made from what the processes recorded
(the collected families of a scrape, built by hand here)."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from certstream.shell import metrics, specmetrics
from certstream.shell.specmetrics import IngestMetrics, exposition

SPEC_SERIES = (
    "certstream_messages_sent", "certstream_parse_failures", "certstream_ct_logs_count",
    "certstream_worker_panics", "certstream_static_ct_logs_count",
    "certstream_static_ct_tiles_fetched", "certstream_static_ct_entries_parsed",
    "certstream_static_ct_checkpoint_errors", "certstream_issuer_cache_size",
    "certstream_duplicates_filtered", "certstream_dedup_cache_size",
)


class _Scrape:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _counter(name: str, labels: list[str], rows: list[tuple[list[str], float]]) -> Metric:
    family = CounterMetricFamily(name, "help", labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_the_spec_series_are_written_under_their_exact_names_summed() -> None:
    argon, tiled = "Google 'Argon2026h2'", 'Odd "tiled" log'
    scrape = _Scrape([
        _counter("certstream_entries", ["log", "type"],
                 [([argon, "x509"], 12), ([argon, "precert"], 8), ([tiled, "x509"], 11)]),
        _counter("certstream_duplicates", [], [([], 20)]),
        GaugeMetricFamily("certstream_dedup_size", "help", value=51),
        _counter("certstream_restarts", ["process"], [(["worker"], 1), (["ingest"], 1)]),
        _counter("certstream_spec_parse_failures", ["log"], [([argon], 2)]),
        _counter("certstream_spec_static_ct_tiles_fetched", ["log"], [([tiled], 3)]),
        _counter("certstream_spec_static_ct_checkpoint_errors", ["log"], [([tiled], 0)]),
        GaugeMetricFamily("certstream_spec_ct_logs_count", "help", value=2),
    ])
    text = exposition(scrape).decode()
    got = _samples(text)
    assert got[f'certstream_messages_sent{{log="{argon}"}}'] == 20  # x509 + precert
    assert got['certstream_messages_sent{log="Odd \\"tiled\\" log"}'] == 11
    assert got["certstream_duplicates_filtered"] == 20
    assert got["certstream_dedup_cache_size"] == 51
    assert got["certstream_worker_panics"] == 2
    assert got[f'certstream_parse_failures{{log="{argon}"}}'] == 2
    assert got['certstream_static_ct_tiles_fetched{log="Odd \\"tiled\\" log"}'] == 3
    assert got['certstream_static_ct_checkpoint_errors{log="Odd \\"tiled\\" log"}'] == 0
    assert got["certstream_ct_logs_count"] == 2
    # Nothing recorded yet: an unlabelled series is there at zero.
    assert got["certstream_static_ct_logs_count"] == 0
    assert got["certstream_issuer_cache_size"] == 0
    # Counters are typed as counters, with no _total on the samples.
    assert "# TYPE certstream_messages_sent counter" in text
    assert "# TYPE certstream_dedup_cache_size gauge" in text
    assert not any(name.startswith(SPEC_SERIES) and "_total" in name for name in got)
    # Ours are written as before; the hidden storage is not.
    assert got['certstream_entries_total{log="Google \'Argon2026h2\'",type="x509"}'] == 12
    assert got['certstream_restarts_total{process="worker"}'] == 1
    assert "certstream_spec_" not in text
    assert "\n" + "certstream_messages_sent" in text and text.endswith("\n")
    # Integers are written as the spec's server writes them.
    assert "certstream_duplicates_filtered 20\n" in text


def test_every_spec_series_is_on_the_page_of_this_process() -> None:
    text = metrics.render_metrics()[0].decode()
    for name in SPEC_SERIES:
        assert f"# TYPE {name} " in text


def test_ingest_metrics_name_ours_and_the_specs() -> None:
    both = IngestMetrics(metrics, specmetrics)
    assert both.ENTRIES is metrics.ENTRIES and both.TILES_FETCHED is specmetrics.TILES_FETCHED
    assert getattr(both, "NOT_A_METRIC", None) is None
