"""Platform quotas: defaults fill what a spec leaves unset, ceilings name what it exceeds."""

from __future__ import annotations

import pytest
from nats.js.api import DiscardPolicy
from pydantic import ValidationError

from akeneo_connector.jetstream import bucket_limits, desired_stream_config, stream_drift
from akeneo_connector.names import ConnectionNames
from akeneo_connector.quotas import DEFAULT_QUOTAS, StreamQuotas
from akeneo_connector.spec import GiB, MiB, StreamSpec

NAMES = ConnectionNames("tenant-a", "acme")


def test_unset_quotas_take_the_platform_defaults_and_discard_new() -> None:
    config = desired_stream_config(NAMES, StreamSpec())
    assert (config.max_bytes, config.max_msgs, config.max_msg_size) == (
        512 * MiB,
        1_000_000,
        2 * MiB,
    )
    assert config.discard is DiscardPolicy.NEW
    assert bucket_limits(StreamSpec()) == {
        "num_replicas": 1, "max_bytes": 128 * MiB, "max_msgs": 2_000_000, "max_msg_size": 4096,
    }  # fmt: skip


def test_a_tenant_may_lower_and_a_default_never_exceeds_its_lowered_bytes() -> None:
    spec = StreamSpec(max_bytes=1 * MiB, bucket={"max_bytes": 2 * MiB, "max_msgs": 5000})
    resolved = DEFAULT_QUOTAS.resolve(spec)
    assert (resolved.max_bytes, resolved.max_msg_size) == (1 * MiB, 1 * MiB)
    assert (resolved.bucket.max_bytes, resolved.bucket.max_msgs) == (2 * MiB, 5000)
    assert DEFAULT_QUOTAS.violations(spec) == []


def test_above_the_ceiling_each_field_is_named_with_value_limit_and_setting() -> None:
    spec = StreamSpec(
        max_bytes=20 * GiB, max_age="2000h", duplicate_window="30h", bucket={"max_msgs": 10**8}
    )
    found = DEFAULT_QUOTAS.violations(spec)
    assert found == [
        f"spec.stream.maxBytes {20 * GiB} exceeds the platform limit {8 * GiB} "
        "(operator setting streamQuotas.max.maxBytes)",
        "spec.stream.bucket.maxMsgs 100000000 exceeds the platform limit 20000000 "
        "(operator setting streamQuotas.max.bucket.maxMsgs)",
        "spec.stream.maxAge 2000h exceeds the platform limit 720h "
        "(operator setting streamQuotas.max.maxAge)",
        "spec.stream.duplicateWindow 30h exceeds the platform limit 24h "
        "(operator setting streamQuotas.max.duplicateWindow)",
    ]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"maxAge": "0s", "duplicateWindow": "0s"}, "maxAge must be longer than 0"),
        ({"duplicateWindow": "0m"}, "duplicateWindow must be longer than 0"),
        ({"maxAge": "1h", "duplicateWindow": "2h"}, "must not exceed stream.maxAge"),
        ({"maxBytes": 2 * MiB, "maxMsgSize": 3 * MiB}, "maxMsgSize must not exceed"),
        ({"maxBytes": 1000}, "greater than or equal to 1048576"),
    ],
)
def test_static_bounds_are_in_the_spec_model(stream: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StreamSpec.model_validate(stream)


def test_settings_defaults_must_fit_their_ceilings_and_merge_partially() -> None:
    partial = StreamQuotas.model_validate({"default": {"maxBytes": 64 * MiB}})
    assert partial.default.max_bytes == 64 * MiB and partial.default.max_msgs == 1_000_000
    with pytest.raises(ValidationError, match=r"default\.bucket\.maxBytes exceeds"):
        StreamQuotas.model_validate({"default": {"bucket": {"maxBytes": 4 * GiB}}})


def test_drift_covers_the_quotas_and_the_discard_policy() -> None:
    desired = desired_stream_config(NAMES, StreamSpec())
    live = desired_stream_config(NAMES, StreamSpec(max_bytes=64 * MiB, max_msgs=5000))
    live.discard = DiscardPolicy.OLD
    live.max_msg_size = -1
    assert set(stream_drift(desired, live)) == {"max_bytes", "max_msgs", "max_msg_size", "discard"}
    assert stream_drift(desired, desired_stream_config(NAMES, StreamSpec())) == ()


def test_a_ceiling_below_the_spec_default_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"max\.maxAge must be at least the spec's default"):
        StreamQuotas.model_validate({"max": {"maxAge": "24h"}})
