"""Child watch events reduced to digests, and desired manifests kept packed."""

from __future__ import annotations

import json
import sys

from akeneo_operator.children import build_children, ref_of
from akeneo_operator.childwatch import digest, owner_key, owner_uids, pack, unpack
from akeneo_operator.meta import Manifest
from akeneo_operator.status import Cond
from tests.unit.operator.builders_support import make_input
from tests.unit.operator.test_apply import live_copy


def _child(kind: str) -> Manifest:
    return next(m for m in build_children(make_input()) if m["kind"] == kind)


def test_our_own_write_echoed_back_is_not_drift():
    desired = _child("Deployment")
    event = digest("MODIFIED", live_copy(desired), desired)
    assert event.ref == ref_of(desired)
    assert not event.drifted and not event.gone and not event.terminating
    assert event.version == 7
    assert event.component == "receiver"
    assert event.deployment is not None and event.deployment.reason == "PodsAvailable"


def test_edited_and_deleted_children_are_drift():
    desired = _child("Service")
    edited = live_copy(desired)
    edited["spec"]["ports"][0]["port"] = 1234
    assert digest("MODIFIED", edited, desired).drifted
    gone = digest("DELETED", live_copy(desired), desired)
    assert gone.gone and gone.drifted
    assert not digest("DELETED", live_copy(desired), None).drifted  # not ours to recreate


def test_deleted_deployment_reads_as_missing():
    desired = _child("Deployment")
    event = digest("DELETED", live_copy(desired), desired)
    assert event.deployment == Cond.fail("DeploymentMissing", "receiver Deployment does not exist")


def test_terminating_child_is_flagged():
    live = live_copy(_child("Service"))
    live["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert digest("MODIFIED", live, None).terminating


def test_finished_job_result():
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "acme-reconcile-1", "namespace": "tenant-acme"},
        "status": {
            "completionTime": "2025-01-01T00:01:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert digest("MODIFIED", job, None).job == ("2025-01-01T00:01:00Z", "Succeeded")
    assert digest("DELETED", job, None).job is None


def test_digest_keeps_no_reference_into_the_event():
    desired = _child("Deployment")
    live = live_copy(desired)
    parts = [live, live["metadata"], live["metadata"]["managedFields"], live["spec"]]
    parts.append(live["status"])
    before = [sys.getrefcount(p) for p in parts]
    event = digest("MODIFIED", live, desired)
    assert [sys.getrefcount(p) for p in parts] == before
    assert event.version == 7


def test_owner_of_a_child():
    live = live_copy(_child("Service"))
    assert owner_key(live) == ("tenant-acme", "acme")
    assert owner_uids(live) == set()
    live["metadata"]["ownerReferences"] = [
        {"kind": "AkeneoConnection", "uid": "u-conn"},
        {"kind": "Other", "uid": "u-other"},
    ]
    assert owner_uids(live) == {"u-conn"}
    assert owner_key({"metadata": {"name": "x"}}) is None


def test_packed_manifests_round_trip_and_stay_small():
    manifests = build_children(make_input())
    for manifest in manifests:
        assert unpack(pack(manifest)) == manifest
    plain = sum(len(json.dumps(m, separators=(",", ":"))) for m in manifests)
    assert sum(len(pack(m)) for m in manifests) * 2 < plain
