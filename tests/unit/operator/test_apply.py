"""Drift detection of children: hash first, then a subset comparison against the live object."""

from __future__ import annotations

import copy

from akeneo_operator.apply import contains, needs_patch
from akeneo_operator.children import build_children
from akeneo_operator.meta import HASH_ANNOTATION, Manifest, with_hash
from tests.unit.operator.builders_support import make_input


def live_copy(desired: Manifest) -> Manifest:
    """What the API server returns: our fields plus defaults, status and bookkeeping."""
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="u1", resourceVersion="7", managedFields=[{"manager": "x"}])
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    live["status"] = {"availableReplicas": 2}
    if live["kind"] == "Deployment":
        live["spec"]["progressDeadlineSeconds"] = 600
        live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
        live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    return live


def test_unchanged_live_object_needs_no_patch():
    for desired in build_children(make_input()):
        assert not needs_patch(desired, live_copy(desired)), desired["kind"]


def test_missing_or_other_hash_needs_patch():
    desired = build_children(make_input())[1]
    assert needs_patch(desired, None)
    live = live_copy(desired)
    live["metadata"]["annotations"][HASH_ANNOTATION] = "old"
    assert needs_patch(desired, live)
    del live["metadata"]["annotations"][HASH_ANNOTATION]
    assert needs_patch(desired, live)


def test_hand_edit_with_the_hash_kept_is_detected():
    desired = next(m for m in build_children(make_input()) if m["kind"] == "Deployment")
    live = live_copy(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert needs_patch(desired, live)
    live = live_copy(desired)
    live["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    assert needs_patch(desired, live)
    live = live_copy(desired)
    live["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    assert needs_patch(desired, live)


def test_contains_semantics():
    assert contains({"a": 1, "b": [{"c": 2, "d": 3}]}, {"b": [{"c": 2}]})
    assert not contains({"b": [{"c": 2}, {"c": 3}]}, {"b": [{"c": 2}]})
    assert not contains({"a": "1"}, {"a": 1})
    assert not contains(None, {"a": 1})
    assert contains({"a": {}}, {"a": {}})


def test_with_hash_ignores_its_own_annotation():
    m = {"kind": "X", "metadata": {"name": "n"}}
    once = with_hash(m)
    assert with_hash(once) == once
