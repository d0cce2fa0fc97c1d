"""The ``Reconciler``'s branches a user notices, against the in-process API (``fake_api``) and
the session's real nats-server: what it builds, that a second pass writes nothing, what a
refused spec says, and how it repairs or refuses a child."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js.errors import NotFoundError

from akeneo_connector import jetstream
from akeneo_connector.names import ConnectionNames
from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT
from akeneo_connector.spec import KIND
from akeneo_operator import reconciler as reconciler_module
from akeneo_operator.children import build_children
from akeneo_operator.meta import HASH_ANNOTATION, Manifest
from akeneo_operator.policy import (
    HOST_CONFLICT,
    HOST_REFUSED,
    ISSUER_REFUSED,
    PRIVATE_ADDRESSES_REFUSED,
)
from akeneo_operator.reconciler import CHILD_CONFLICT
from tests.unit.operator.fake_api import Write
from tests.unit.operator.reconciler_support import (
    NAME,
    World,
    condition,
    make_world,
    spec_of,
)

# What a connection with ``spec_of()`` owns (ACME_CHILDREN of the integration tests), and the
# first sync Job (never synced).
CHILDREN = {
    ("ServiceAccount", "acme"),
    ("Deployment", "acme-receiver"),
    ("Service", "acme-receiver"),
    ("PodDisruptionBudget", "acme-receiver"),
    ("NetworkPolicy", "acme-receiver"),
    ("Deployment", "acme-worker"),
    ("NetworkPolicy", "acme-worker"),
    ("CronJob", "acme-reconcile"),
    ("CronJob", "acme-full-scan"),
    ("Secret", "acme-tls"),
    ("Secret", "acme-ca"),
}
TLS_MATERIAL = {("Secret", "acme-tls"), ("Secret", "acme-ca")}


@pytest.fixture
async def world(nats: str) -> AsyncIterator[World]:
    w = make_world(nats)
    yield w
    await w.rec.nats.close()


def put_foreign_service(world: World) -> Manifest:
    """A Service under the receiver's name that the connection does not own."""
    return world.kube.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "acme-receiver", "namespace": world.namespace},
            "spec": {"ports": [{"port": 80}]},
        }
    )


async def ready_world(world: World) -> World:
    """A connection reconciled once, its pods rolled out and seen."""
    world.connection(spec_of())
    await world.reconcile()
    world.roll_out()
    await world.reconcile()
    world.kube.writes.clear()
    world.events.clear()
    return world


async def test_a_valid_spec_builds_every_child_with_its_build_hash(world: World) -> None:
    world.connection(spec_of())
    body = await world.reconcile()

    built = world.children()
    inp = world.rec.states[(world.namespace, NAME)].inp
    assert inp is not None
    hashes = {
        (m["kind"], m["metadata"]["name"]): m["metadata"]["annotations"][HASH_ANNOTATION]
        for m in build_children(inp)
    }
    jobs = {key for key in built if key[0] == "Job"}
    assert set(built) - jobs == CHILDREN
    assert len(jobs) == 1, "one first sync Job: the connection never synced"
    for key, obj in built.items():
        owners = [o["uid"] for o in obj["metadata"].get("ownerReferences") or []]
        assert owners == [body["metadata"]["uid"]], key
        if key in TLS_MATERIAL or key[0] == "Job":
            continue
        annotations = obj["metadata"].get("annotations") or {}
        assert annotations.get(HASH_ANNOTATION) == hashes[key], key
    # no pod is available yet: not Ready, and it says which component waits
    ready = condition(body, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "NoPodsAvailable"
    assert condition(body, "TLSReady")["status"] == "True"
    assert condition(body, "StreamReady")["status"] == "True"


async def test_ready_once_the_deployments_have_their_pods(world: World) -> None:
    world.connection(spec_of())
    await world.reconcile()
    world.roll_out()
    body = await world.reconcile()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "AllComponentsReady")
    assert ("Normal", "AllComponentsReady") in {(t, r) for t, r, _ in world.events}


async def test_a_deployment_rollout_seen_as_a_child_event_turns_ready(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler_module, "CHILD_EVENTS_GATHER_SECONDS", 0.01)
    world.connection(spec_of())
    await world.reconcile()
    world.roll_out()
    for name in ("acme-receiver", "acme-worker"):
        dep = world.kube.find("Deployment", world.namespace, name)
        assert dep is not None
        world.rec.on_child_event("MODIFIED", dep)
    await world.settle()
    assert condition(world.body(), "Ready")["status"] == "True"


async def test_the_same_spec_again_writes_nothing(world: World) -> None:
    await ready_world(world)
    before = world.body()["metadata"]["resourceVersion"]
    await world.reconcile()
    await world.reconcile()
    assert world.kube.writes == []
    assert world.body()["metadata"]["resourceVersion"] == before
    assert world.events == []


async def test_a_spec_change_rewrites_only_the_children_it_changes(world: World) -> None:
    await ready_world(world)
    await world.edit_spec(spec_of(worker={"replicas": 3}))
    body = await world.reconcile()
    assert world.applied() == [Write("apply", "Deployment", "acme-worker")]
    worker = world.kube.find("Deployment", world.namespace, "acme-worker")
    assert worker is not None and worker["spec"]["replicas"] == 3
    # the status follows the new generation; 1 of 3 pods: still ready, partially
    assert body["status"]["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in body["status"]["conditions"]} == {2}
    assert condition(body, "WorkerReady")["reason"] == "PartiallyAvailable"


async def test_a_removed_optional_child_is_pruned(world: World) -> None:
    await ready_world(world)
    await world.edit_spec(spec_of(reconciliation={"fullScanSchedule": None, "resources": []}))
    await world.reconcile()
    # the reconcile CronJob lists no resource now; the full scan is gone
    assert world.applied() == [
        Write("apply", "CronJob", "acme-reconcile"),
        Write("delete", "CronJob", "acme-full-scan"),
    ]


@pytest.mark.parametrize(
    ("settings", "spec", "reason", "words"),
    [
        pytest.param(
            {},
            spec_of(pim={"url": "https://pim.example.com", "allowPrivateAddresses": True}),
            PRIVATE_ADDRESSES_REFUSED,
            "spec.pim.allowPrivateAddresses",
            id="private-pim-not-allowed",
        ),
        pytest.param(
            {},
            spec_of(pim={"url": "https://10.1.2.3", "credentialsSecret": "acme-pim-api"}),
            PRIVATE_ADDRESSES_REFUSED,
            "spec.pim.url",
            id="private-pim-literal",
        ),
        pytest.param(
            {"stream_quotas": {"default": {"maxBytes": 2**27}, "max": {"maxBytes": 2**28}}},
            spec_of(stream={"maxBytes": 2**29}),
            QUOTA_EXCEEDS_PLATFORM_LIMIT,
            f"spec.stream.maxBytes {2**29} exceeds",
            id="quota-over-platform-max",
        ),
        pytest.param(
            {},
            spec_of(
                tls={"mode": "certManager", "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}
            ),
            ISSUER_REFUSED,
            "spec.tls.issuerRef ClusterIssuer/ca",
            id="issuer-not-allowed",
        ),
        pytest.param(
            {"host_pattern": "*.{namespace}.hooks.example.com"},
            spec_of(receiver={"signatureSecret": "acme-events", "host": "acme.example.org"}),
            HOST_REFUSED,
            "spec.receiver.host acme.example.org",
            id="host-not-allowed",
        ),
    ],
)
async def test_a_refused_spec_says_why_and_builds_nothing(
    nats: str, settings: dict[str, object], spec: dict[str, object], reason: str, words: str
) -> None:
    world = make_world(nats, **settings)
    try:
        world.connection(spec)
        body = await world.reconcile()
    finally:
        await world.rec.nats.close()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert words in ready["message"]
    assert world.children() == {}
    assert world.kube.writes == [Write("status", "AkeneoConnection", NAME)]
    assert body["status"]["observedGeneration"] == 1


async def test_a_host_kept_by_an_older_connection_is_refused(world: World) -> None:
    host = "hooks.example.com"
    receiver = {"signatureSecret": "acme-events", "host": host}
    world.connection(spec_of(receiver=receiver), name="older", created="2026-01-01T00:00:00Z")
    world.connection(spec_of(receiver=receiver), created="2026-01-02T00:00:00Z")
    body = await world.reconcile()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", HOST_CONFLICT)
    assert "older" not in ready["message"], "another tenant's connection is not named"
    assert world.children() == {}
    assert world.rec.states[(world.namespace, NAME)].needs_retry, "retried: it may be freed"


async def test_a_missing_secret_blocks_before_any_child(world: World) -> None:
    world.kube.remove("Secret", world.namespace, "acme-events")
    world.connection(spec_of())
    body = await world.reconcile()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretMissing")
    assert "acme-events" in ready["message"]
    assert world.children() == {}


async def test_an_invalid_spec_names_the_field(world: World) -> None:
    world.connection(spec_of(worker={"replicas": 99}))
    body = await world.reconcile()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.worker.replicas:")
    assert world.children() == {}


async def test_a_child_deleted_by_hand_is_recreated_at_once(world: World) -> None:
    await ready_world(world)
    service = world.kube.find("Service", world.namespace, "acme-receiver")
    assert service is not None
    world.kube.remove("Service", world.namespace, "acme-receiver")
    world.rec.on_child_event("DELETED", service)
    await world.settle()  # a deletion does not wait for the gather delay
    assert world.applied() == [Write("apply", "Service", "acme-receiver")]
    again = world.kube.find("Service", world.namespace, "acme-receiver")
    assert again is not None and again["metadata"]["uid"] != service["metadata"]["uid"]
    assert ("Warning", "ChildRepaired") in {(t, r) for t, r, _ in world.events}


async def test_a_child_edited_by_hand_is_put_back(world: World) -> None:
    await ready_world(world)
    key = ("Deployment", world.namespace, "acme-worker")
    world.kube.objects[key]["spec"]["replicas"] = 7
    edited = world.kube.find(*key)
    assert edited is not None
    world.rec.on_child_event("MODIFIED", edited)
    await world.settle()
    back = world.kube.find(*key)
    assert back is not None and back["spec"]["replicas"] == 1


async def test_a_full_reconcile_recreates_a_deleted_child(world: World) -> None:
    await ready_world(world)
    world.kube.remove("CronJob", world.namespace, "acme-reconcile")
    await world.reconcile()
    assert world.applied() == [Write("apply", "CronJob", "acme-reconcile")]


async def test_a_child_name_held_by_someone_else_is_left_alone(world: World) -> None:
    foreign = put_foreign_service(world)
    world.connection(spec_of())
    body = await world.reconcile()
    ready = condition(body, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", CHILD_CONFLICT)
    assert "Service acme-receiver" in ready["message"]
    assert world.kube.find("Service", world.namespace, "acme-receiver") == foreign
    assert world.applied() == [], "a name clash stops before any write"
    assert world.rec.states[(world.namespace, NAME)].needs_retry


async def test_an_edit_of_a_child_taken_over_is_not_repaired(world: World) -> None:
    """A child replaced by someone else's object under the same name is not written to."""
    await ready_world(world)
    world.kube.remove("Service", world.namespace, "acme-receiver")
    foreign = put_foreign_service(world)
    world.rec.on_child_event("MODIFIED", foreign)
    await world.settle()
    assert world.kube.find("Service", world.namespace, "acme-receiver") == foreign
    body = await world.reconcile()
    assert condition(body, "Ready")["reason"] == CHILD_CONFLICT


async def test_keda_not_installed_is_a_condition(world: World) -> None:
    world.connection(spec_of(worker={"autoscaling": {"maxReplicas": 4}}))
    world.roll_out()
    await world.reconcile()
    world.roll_out()
    body = await world.reconcile()
    cond = condition(body, "WorkerAutoscalerReady")
    assert (cond["status"], cond["reason"]) == ("False", "KedaNotInstalled")
    assert condition(body, "Ready")["reason"] == "KedaNotInstalled"


async def test_a_stream_deleted_by_hand_is_recreated_by_the_maintenance_tick(
    world: World,
) -> None:
    await ready_world(world)
    names = ConnectionNames(world.namespace, NAME)
    js = await world.rec.nats.js()
    await jetstream.delete_all(js, names)
    await world.rec.maintain(world.namespace, NAME)
    await js.stream_info(names.stream)  # raises when it is still gone
    assert ("Warning", "StreamRepaired") in {(t, r) for t, r, _ in world.events}
    assert world.kube.writes == [], "nothing else changed: no status write"


async def test_deletion_removes_the_stream_unless_preserved(world: World) -> None:
    await ready_world(world)
    names = ConnectionNames(world.namespace, NAME)
    js = await world.rec.nats.js()
    await world.rec.finalize(world.body())
    with pytest.raises(NotFoundError):
        await js.stream_info(names.stream)
    assert (world.namespace, NAME) not in world.rec.states


async def test_a_preserved_stream_outlives_its_connection(world: World) -> None:
    world.connection(spec_of(stream={"preserveOnDelete": True}))
    await world.reconcile()
    names = ConnectionNames(world.namespace, NAME)
    await world.rec.finalize(world.body())
    js = await world.rec.nats.js()
    info = await js.stream_info(names.stream)
    assert info.config.name == names.stream
    await jetstream.delete_all(js, names)


async def test_a_self_signed_certificate_near_expiry_is_renewed_by_the_maintenance_tick(
    world: World,
) -> None:
    await ready_world(world)
    before = world.kube.find("Secret", world.namespace, "acme-tls")
    assert before is not None
    await world.rec.maintain(world.namespace, NAME)
    assert world.kube.find("Secret", world.namespace, "acme-tls") == before, "not due yet"
    settings = world.rec.settings
    world.advance(settings.cert_validity_delta - settings.cert_renew_before_delta)
    await world.rec.maintain(world.namespace, NAME)
    after = world.kube.find("Secret", world.namespace, "acme-tls")
    assert after is not None and after["data"]["tls.crt"] != before["data"]["tls.crt"]
    reasons = [r for _, r, _ in world.events]
    assert "CertificateRenewal" in reasons and "CertificateIssued" in reasons


async def test_the_maintenance_loop_reconciles_a_connection_no_handler_ran_for(
    world: World,
) -> None:
    world.connection(spec_of())
    await world.rec.maintain(world.namespace, NAME)
    assert condition(world.body(), "TLSReady")["status"] == "True"
    assert ("Deployment", "acme-receiver") in world.children()


async def test_the_maintenance_loop_waits_for_kopfs_finalizer(world: World) -> None:
    """Without it a deletion could skip the cleanup of the stream."""
    world.connection(spec_of())
    key = (KIND, world.namespace, NAME)
    world.kube.objects[key]["metadata"]["finalizers"] = []
    await world.rec.maintain(world.namespace, NAME)
    assert world.kube.writes == []
    assert "status" not in world.body()


async def test_a_freed_child_name_is_built_by_the_maintenance_tick(world: World) -> None:
    """The conflict message says: remove that object; nothing else is needed."""
    put_foreign_service(world)
    world.connection(spec_of())
    body = await world.reconcile()
    assert condition(body, "Ready")["reason"] == CHILD_CONFLICT
    world.kube.remove("Service", world.namespace, "acme-receiver")
    await world.rec.maintain(world.namespace, NAME)
    assert set(world.children()) >= CHILDREN
    assert condition(world.body(), "Ready")["reason"] == "NoPodsAvailable"


async def test_cert_manager_not_installed_is_a_condition(world: World) -> None:
    tls = {"mode": "certManager", "issuerRef": {"kind": "Issuer", "name": "ca"}}
    world.connection(spec_of(tls=tls))
    body = await world.reconcile()
    cond = condition(body, "TLSReady")
    assert (cond["status"], cond["reason"]) == ("False", "CertManagerNotInstalled")
    assert ("Secret", "acme-ca") not in world.children(), "no self-signed CA instead"


async def test_a_certificate_is_asked_of_cert_manager_and_its_secret_awaited(
    nats: str,
) -> None:
    world = make_world(nats)
    world.kube.not_installed = frozenset({"ScaledObject"})  # cert-manager is installed
    try:
        tls = {"mode": "certManager", "issuerRef": {"kind": "Issuer", "name": "ca"}}
        world.connection(spec_of(tls=tls))
        body = await world.reconcile()
        cert = world.kube.find("Certificate", world.namespace, NAME)
        assert cert is not None
        assert cert["spec"]["secretName"] == "acme-tls"
        issuer = {"group": "cert-manager.io", "kind": "Issuer", "name": "ca"}
        assert cert["spec"]["issuerRef"] == issuer
        pending = condition(body, "TLSReady")
        assert (pending["status"], pending["reason"]) == ("False", "CertificatePending")
        # cert-manager issued it: the receiver rolls out with the new revision
        issued = {
            "conditions": [{"type": "Ready", "status": "True"}],
            "notAfter": "2026-09-01T00:00:00Z",
            "revision": 1,
        }
        world.kube.set_status("Certificate", world.namespace, NAME, issued)
        world.kube.writes.clear()
        body = await world.reconcile()
    finally:
        await world.rec.nats.close()
    ready = condition(body, "TLSReady")
    assert (ready["status"], ready["reason"]) == ("True", "CertificateIssued")
    assert "2026-09-01" in ready["message"]
    assert Write("apply", "Deployment", "acme-receiver") in world.applied()
