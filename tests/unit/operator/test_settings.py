"""Operator settings: flags over env over defaults."""

from __future__ import annotations

import argparse
import json

import pytest
from pydantic import ValidationError

from akeneo_operator.settings import DEFAULT_IMAGE, configure, from_sources
from akeneo_operator.timing import first_delay, jittered


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


def test_defaults_and_env():
    s = from_sources(parse([]), {})
    assert s.image == DEFAULT_IMAGE and "/" not in s.image.split(":")[0]
    assert s.namespaces == () and not s.standalone
    s = from_sources(
        parse([]),
        {
            "AKENEO_NATS_URL": "nats://a:4222",
            "AKENEO_WATCH_NAMESPACES": "t1, t2",
            "AKENEO_DEFAULT_RESOURCES": '{"requests": {"cpu": "50m"}}',
            "AKENEO_PEERING_NAME": "p",
            "AKENEO_OPERATOR_STANDALONE": "true",
            "AKENEO_OPERATOR_STREAM_QUOTAS": json.dumps(
                {"max": {"maxAge": "480h", "bucket": {"maxMsgs": 50_000_000}}}
            ),
        },
    )
    assert (
        s.stream_quotas.max.max_age == "480h" and s.stream_quotas.max.bucket.max_msgs == 50_000_000
    )
    assert s.stream_quotas.default.max_bytes == 512 * 1024 * 1024
    assert s.nats_url == "nats://a:4222"
    assert s.namespaces == ("t1", "t2")
    assert s.resources("worker").requests == {"cpu": "50m"}
    assert s.peering_name == "p" and s.standalone


def test_flags_win_over_env():
    s = from_sources(parse(["--image", "x:1", "--standalone"]), {"AKENEO_IMAGE": "y:2"})
    assert s.image == "x:1" and s.standalone


def test_invalid_duration_is_refused():
    with pytest.raises(ValidationError):
        from_sources(parse(["--maintenance-interval", "soon"]), {})


def test_random_priorities_differ():
    assert len({from_sources(None, {}).priority for _ in range(5)}) > 1


def test_jitter_bounds():
    for _ in range(100):
        assert 6 <= first_delay(60) <= 60
        assert 48 <= jittered(60) <= 72
