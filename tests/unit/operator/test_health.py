"""The operator's per-connection series: built at scrape time, gone with the connection."""

from __future__ import annotations

from prometheus_client import generate_latest

from akeneo_operator.health import ConnectionSample, OperatorMetrics
from akeneo_operator.reconciler import schedule_period


def test_per_connection_series_follow_the_source_at_each_scrape():
    metrics = OperatorMetrics()
    samples = [
        ConnectionSample(
            "tenant-a",
            "shop",
            {"Ready": "False", "EventSubscriptionActive": "False", "TLSReady": "Unknown"},
            last_reconcile=1_767_225_600.0,
            last_reconcile_ok=False,
            reconcile_period=900.0,
            certificate_not_after=1_800_000_000.0,
        )
    ]
    metrics.per_connection.source = lambda: samples
    text = generate_latest(metrics.registry).decode()
    key = 'connection="shop",namespace="tenant-a"'
    assert f'akeneo_operator_connection_condition{{{key},type="Ready"}} 0.0' in text
    assert f'akeneo_operator_connection_condition{{{key},type="TLSReady"}} -1.0' in text
    assert f"akeneo_operator_reconcile_last_run_success{{{key}}} 0.0" in text
    assert f"akeneo_operator_reconcile_period_seconds{{{key}}} 900.0" in text
    assert f"akeneo_operator_certificate_expiry_timestamp_seconds{{{key}}} 1.8e+09" in text
    assert 'akeneo_operator_reconciles_total{result="error"} 0.0' in text
    samples.clear()  # the connection was deleted: its series go with it
    assert 'namespace="tenant-a"' not in generate_latest(metrics.registry).decode()


def test_schedule_period_is_the_longest_gap_between_runs():
    assert schedule_period("*/15 * * * *") == 900
    assert schedule_period("@hourly") == 3600
    assert schedule_period("0 3 * * 0") == 7 * 86400
    assert schedule_period("0 3,4 * * *") == 23 * 3600  # irregular: the longest gap counts
    assert schedule_period("not a schedule") is None
