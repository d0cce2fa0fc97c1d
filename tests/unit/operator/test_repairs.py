"""One-off Jobs (initial sync, sync-now, catch-up), gap windows the operator observes, the
TLS defaults and PubliclyTrusted: the pure parts."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from akeneo_connector.dead_letters import CAUSE as DEAD_CAUSE
from akeneo_connector.dead_letters import CAUSE_EXHAUSTED, DEAD_AT
from akeneo_connector.gaps import CatchUpPlan, GapSource, Window
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_connector.spec import AkeneoConnectionSpec, TLSMode, TLSSpec
from akeneo_operator import crd
from akeneo_operator.certs import issue_ca, issue_serving
from akeneo_operator.children import (
    JOB_PURPOSE_LABEL,
    catch_up_job,
    initial_sync_job,
    job_name,
    sync_now_job,
)
from akeneo_operator.gap_sources import dead_letter_window
from akeneo_operator.repairs import Repairs, RepairState, handled_value, retry_after
from akeneo_operator.settings import from_sources
from akeneo_operator.status import (
    CATCH_UP,
    PUBLICLY_TRUSTED,
    RECEIVER_READY,
    Cond,
    Observed,
    ready_condition,
    render_status,
)
from akeneo_operator.tls import certificate
from akeneo_operator.trust import publicly_trusted
from tests.unit.operator.builders_support import BASE_SPEC, make_input, pod_spec

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def container(job: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = pod_spec(job)["containers"][0]
    return c


# -- Jobs ---------------------------------------------------------------------------------------


def test_a_one_off_job_is_the_reconcile_cronjob_template_with_its_own_args() -> None:
    inp = make_input()
    job = initial_sync_job(inp)
    assert job["kind"] == "Job" and job["metadata"]["name"] == "acme-initial-sync"
    assert job["metadata"]["labels"][JOB_PURPOSE_LABEL] == "initial-sync"
    assert container(job)["command"] == ["akeneo-connector", "reconcile", "--lock-wait", "30m"]
    # same pod as the CronJob's: env, mounts, security, restart policy
    from akeneo_operator.children import reconcile_cronjobs

    cron = reconcile_cronjobs(inp)[0]
    cron_container = container(cron)
    assert container(job)["env"] == cron_container["env"]
    assert container(job)["volumeMounts"] == cron_container["volumeMounts"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # finished Jobs do not pile up


def test_the_initial_sync_reads_the_listed_structure_with_a_full_run() -> None:
    spec = copy.deepcopy(BASE_SPEC)
    spec["reconciliation"] = {"resources": ["products", "categories"]}
    args = container(initial_sync_job(make_input(spec)))["command"]
    assert args == ["akeneo-connector", "reconcile", "--full", "--lock-wait", "30m"]


def test_sync_now_makes_one_job_name_per_value() -> None:
    inp = make_input()
    a, b = sync_now_job(inp, "1", full=False), sync_now_job(inp, "2", full=False)
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert a["metadata"]["name"] == sync_now_job(inp, "1", full=False)["metadata"]["name"]
    assert a["metadata"]["name"].startswith("acme-sync-now-")
    full = sync_now_job(inp, "1", full=True)
    assert full["metadata"]["name"].startswith("acme-full-scan-now-")
    assert "--full" in container(full)["command"]
    assert "--full" not in container(a)["command"]


def test_the_catch_up_job_reads_from_the_plans_since() -> None:
    plan = CatchUpPlan(T0 - timedelta(minutes=5, microseconds=500), 42, (Window(T0, T0),))
    job = catch_up_job(make_input(), plan)
    assert job["metadata"]["name"] == "acme-catch-up-42"
    assert container(job)["command"] == [
        "akeneo-connector", "reconcile", "--since", "2026-12-04T09:54:59Z",  # rounded down
        "--lock-wait", "30m",
    ]  # fmt: skip
    assert catch_up_job(make_input(), plan, attempt=3)["metadata"]["name"] == "acme-catch-up-42-3"


def test_job_names_fit_a_label_value() -> None:
    long = "a" * 40
    name = job_name(long, "catch-up", "123456789012", "12")
    assert len(name) <= 63 and name.startswith(long)
    assert name != job_name(long, "catch-up", "123456789012", "13")


def test_annotation_values_are_remembered_bounded() -> None:
    assert handled_value("2026-12-04") == "2026-12-04"
    long = "x" * 1000
    assert handled_value(long).startswith("sha256:") and len(handled_value(long)) < 80
    assert handled_value(long) != handled_value(long + "y")


def test_failed_catch_ups_back_off_up_to_an_hour() -> None:
    assert [retry_after(a).total_seconds() for a in (1, 2, 3)] == [60, 120, 240]
    assert retry_after(20) == timedelta(hours=1)


# -- windows the operator observes --------------------------------------------------------------


def repairs(clock: list[datetime]) -> Repairs:
    """Observing the receiver touches neither the API server nor NATS."""
    no_client: Any = None
    return Repairs(
        make_input().settings, no_client, no_client, lambda m, o: m, lambda: clock[0],
        logging.getLogger(),
    )  # fmt: skip


def test_a_receiver_that_was_ready_and_went_down_opens_and_closes_a_window() -> None:
    clock = [T0]
    r, rs = repairs(clock), RepairState()
    # a new connection: not ready, then ready: no window (nothing was received before)
    r.observe_receiver(rs, Cond.fail("NoPodsAvailable"))
    r.observe_receiver(rs, Cond.ok("PodsAvailable"))
    assert rs.recorded == [] and "receiverDownSince" not in rs.catch_up
    clock[0] = T0 + timedelta(minutes=1)
    r.observe_receiver(rs, Cond.fail("NoPodsAvailable"))
    clock[0] = T0 + timedelta(minutes=2)
    r.observe_receiver(rs, Cond.fail("NoPodsAvailable"))  # still down: same window
    assert rs.catch_up["receiverDownSince"] == "2026-12-04T10:01:00Z"
    clock[0] = T0 + timedelta(minutes=4)
    r.observe_receiver(rs, Cond("Unknown", "Pending"))  # says nothing
    r.observe_receiver(rs, Cond.ok("PartiallyAvailable"))
    (record,) = rs.recorded
    assert record.source is GapSource.RECEIVER_DOWN
    assert (record.start, record.end) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=4))
    assert "receiverDownSince" not in rs.catch_up


def test_the_open_window_survives_an_operator_restart_in_status() -> None:
    clock = [T0]
    r, rs = repairs(clock), RepairState()
    status = {
        "conditions": [{"type": RECEIVER_READY, "status": "False"}],
        "catchUp": {"receiverDownSince": "2026-12-04T09:00:00Z", "through": 7},
        "sync": {"syncNow": "1"},
    }
    rs.load(status)
    rs.load({})  # loaded once: later bodies do not reset what this operator learnt
    assert rs.sync == {"syncNow": "1"} and rs.catch_up["through"] == 7
    r.observe_receiver(rs, Cond.ok("PodsAvailable"))
    assert rs.recorded[0].start == T0 - timedelta(hours=1)
    obs = Observed()
    rs.render(obs)
    assert obs.catch_up == {"through": 7} and obs.sync == {"syncNow": "1"}
    rendered = render_status(obs, {}, T0)
    assert rendered["catchUp"] == {"through": 7} and rendered["sync"] == {"syncNow": "1"}


def _dead_letter(version: datetime, dead_at: datetime, cause: str) -> tuple[bytes, dict[str, str]]:
    event = NormalizedEvent(
        connection="tenant-acme/acme",
        source=SourceFormat.EVENTS_API,
        event_id="e-1",
        action=Action.UPSERT,
        kind=ResourceKind.PRODUCT,
        key="k",
        version=version,
    )
    return event.to_message(), {DEAD_CAUSE: cause, DEAD_AT: dead_at.isoformat()}


def test_dead_letters_worth_a_catch_up_span_from_the_oldest_change_to_the_last_letter() -> None:
    letters = [
        _dead_letter(T0, T0 + timedelta(minutes=5), CAUSE_EXHAUSTED),
        _dead_letter(T0 - timedelta(hours=1), T0, "rejected"),  # the sink refuses it for good
        _dead_letter(T0 + timedelta(minutes=1), T0 + timedelta(minutes=9), CAUSE_EXHAUSTED),
        (b"not json", {DEAD_CAUSE: CAUSE_EXHAUSTED, DEAD_AT: T0.isoformat()}),
    ]
    assert dead_letter_window(letters) == (T0, T0 + timedelta(minutes=9), 3)
    assert dead_letter_window(letters[1:2]) is None
    assert dead_letter_window([]) is None


# -- conditions -----------------------------------------------------------------------------------


def test_catch_up_and_trust_are_shown_without_holding_ready_down() -> None:
    obs = Observed()
    obs.conditions = dict.fromkeys(obs.conditions, Cond.ok("Fine"))
    obs.conditions[CATCH_UP] = Cond.fail("Running", "Job acme-catch-up-3 reads ...")
    obs.conditions[PUBLICLY_TRUSTED] = Cond.fail("SelfSignedCertificate", "...")
    assert ready_condition(obs).status == "True"
    types = [c["type"] for c in render_status(obs, {}, T0)["conditions"]]
    assert types[-3:] == ["ReconcileScheduled", CATCH_UP, PUBLICLY_TRUSTED]
    assert set(crd.CONDITION_TYPES) >= {CATCH_UP, PUBLICLY_TRUSTED}


# -- TLS ------------------------------------------------------------------------------------------

DEFAULT = TLSSpec(mode=TLSMode.CERT_MANAGER, issuer_ref={"kind": "ClusterIssuer", "name": "le"})


def spec_of(**extra: Any) -> AkeneoConnectionSpec:
    raw = copy.deepcopy(BASE_SPEC)
    for key, value in extra.items():
        if key == "host":
            raw["receiver"]["host"] = value
        else:
            raw[key] = value
    return AkeneoConnectionSpec.model_validate(raw)


def test_default_tls_applies_to_a_public_host_whose_spec_leaves_tls_out() -> None:
    public = spec_of(host="acme.hooks.example.com").with_default_tls(DEFAULT)
    assert public.effective_tls == DEFAULT
    explicit = spec_of(host="acme.hooks.example.com", tls={"mode": "selfSigned"})
    assert explicit.with_default_tls(DEFAULT).effective_tls.mode is TLSMode.SELF_SIGNED
    # no public host: only in-cluster names, which no public CA certifies
    assert spec_of().with_default_tls(DEFAULT).effective_tls.mode is TLSMode.SELF_SIGNED
    assert spec_of(host="a.example.com").with_default_tls(None).effective_tls == TLSSpec()


def test_tls_left_out_stays_detectable_in_the_crd() -> None:
    tls = crd.spec_schema()["properties"]["tls"]
    assert "default" not in tls  # the API server would otherwise write {mode: selfSigned}
    assert tls["properties"]["mode"]["default"] == "selfSigned"  # tls: {} is still selfSigned


def test_default_tls_is_an_operator_setting() -> None:
    value = json.dumps({"mode": "certManager", "issuerRef": {"name": "letsencrypt"}})
    settings = from_sources(None, {"AKENEO_OPERATOR_DEFAULT_TLS": value})
    assert settings.default_tls == TLSSpec(
        mode=TLSMode.CERT_MANAGER, issuer_ref={"kind": "ClusterIssuer", "name": "letsencrypt"}
    )
    assert from_sources(None, {"AKENEO_OPERATOR_DEFAULT_TLS": "{}"}).default_tls is None
    with pytest.raises(ValueError, match="issuerRef"):
        from_sources(None, {"AKENEO_OPERATOR_DEFAULT_TLS": '{"mode": "certManager"}'})


def test_an_acme_certificate_names_the_public_host_alone() -> None:
    raw = copy.deepcopy(BASE_SPEC)
    raw["receiver"]["host"] = "acme.hooks.example.com"
    inp = make_input(raw)
    inp = type(inp)(
        inp.names, inp.spec.with_default_tls(DEFAULT), inp.settings, inp.tls_secret
    )  # what the reconciler builds from
    assert certificate(inp)["spec"]["dnsNames"] == ["acme.hooks.example.com"]
    assert certificate(inp)["spec"]["issuerRef"]["name"] == "le"


HOST = "acme.hooks.example.com"


def test_a_self_signed_receiver_is_not_publicly_trusted() -> None:
    cond = publicly_trusted(HOST, TLSMode.SELF_SIGNED, None, T0)
    assert cond is not None and (cond.status, cond.reason) == ("False", "SelfSignedCertificate")
    assert "the PIM and the Event Platform" in cond.message and "refuse" in cond.message
    ca = issue_ca("a self-signed cert", timedelta(days=30), T0)
    cond = publicly_trusted(HOST, TLSMode.SECRET, ca.cert_pem, T0)
    assert cond is not None and cond.reason == "SelfSignedCertificate"
    assert publicly_trusted(None, TLSMode.SELF_SIGNED, None, T0) is None  # no public host


def test_a_certificate_chaining_to_a_root_is_trusted_for_its_host_only() -> None:
    root = issue_ca("a public root", timedelta(days=365), T0)
    leaf = issue_serving(root, [HOST], timedelta(days=30), T0)
    roots = (x509.load_pem_x509_certificate(root.cert_pem),)
    cond = publicly_trusted(HOST, TLSMode.CERT_MANAGER, leaf.cert_pem, T0, roots)
    assert cond is not None and (cond.status, cond.reason) == ("True", "PubliclyTrusted")
    other = publicly_trusted("other.example.com", TLSMode.SECRET, leaf.cert_pem, T0, roots)
    assert other is not None and other.reason == "UntrustedCertificate"
    # the same certificate against the public roots: a private CA
    private = publicly_trusted(HOST, TLSMode.SECRET, leaf.cert_pem, T0)
    assert private is not None and (private.status, private.reason) == (
        "False",
        "UntrustedCertificate",
    )
    pending = publicly_trusted(HOST, TLSMode.CERT_MANAGER, None, T0)
    assert pending is not None and pending.status == "Unknown"
