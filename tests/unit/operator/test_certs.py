"""Per-connection CA, serving certs and the checks applied to user-supplied pairs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from akeneo_operator.certs import (
    CertProblem,
    covers,
    inspect,
    issue_ca,
    issue_serving,
    needs_renewal,
    pair_matches,
    signed_by,
    validate_pair,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca():
    return issue_ca("test CA", timedelta(days=3650), NOW)


def test_serving_cert_is_signed_by_the_ca_and_covers_its_names(ca):
    pair = issue_serving(ca, ["acme.example.com", "acme-receiver.ns.svc"], timedelta(days=90), NOW)
    facts = inspect(pair.cert_pem)
    assert facts.dns_names == ("acme.example.com", "acme-receiver.ns.svc")
    assert facts.not_after == NOW + timedelta(days=90)
    assert signed_by(pair.cert_pem, ca.cert_pem)
    assert pair_matches(pair.cert_pem, pair.key_pem)
    other = issue_ca("other", timedelta(days=1), NOW)
    assert not signed_by(pair.cert_pem, other.cert_pem)
    assert not pair_matches(pair.cert_pem, other.key_pem)


def test_serving_cert_never_outlives_its_ca():
    short = issue_ca("short", timedelta(days=10), NOW)
    pair = issue_serving(short, ["a.example.com"], timedelta(days=90), NOW)
    assert inspect(pair.cert_pem).not_after == NOW + timedelta(days=10)


def test_renewal_window(ca):
    facts = inspect(issue_serving(ca, ["a.example.com"], timedelta(days=90), NOW).cert_pem)
    assert not needs_renewal(facts, timedelta(days=30), NOW + timedelta(days=59))
    assert needs_renewal(facts, timedelta(days=30), NOW + timedelta(days=60))


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("a.example.com", "a.example.com", True),
        ("A.example.com", "a.example.com.", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("b.example.com", "a.example.com", False),
    ],
)
def test_covers(pattern, host, ok):
    assert covers(pattern, host) is ok


def test_validate_pair_reasons(ca):
    pair = issue_serving(ca, ["*.hooks.example.com"], timedelta(days=90), NOW)
    assert validate_pair(pair.cert_pem, pair.key_pem, ["acme.hooks.example.com"], NOW)
    cases = [
        (pair.cert_pem, ca.key_pem, ["acme.hooks.example.com"], NOW, "KeyMismatch"),
        (pair.cert_pem, pair.key_pem, ["acme.other.example.com"], NOW, "HostNotCovered"),
        (pair.cert_pem, pair.key_pem, [], NOW + timedelta(days=91), "CertificateExpired"),
        (pair.cert_pem, pair.key_pem, [], NOW - timedelta(days=1), "CertificateNotYetValid"),
        (b"not a cert", pair.key_pem, [], NOW, "InvalidCertificate"),
    ]
    for cert, key, hosts, now, reason in cases:
        with pytest.raises(CertProblem) as err:
            validate_pair(cert, key, hosts, now)
        assert err.value.reason == reason
        assert "PRIVATE KEY" not in str(err.value)
