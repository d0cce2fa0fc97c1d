"""Issue 15 row 9: a compromised worker cannot make the operator hold its bucket.

The operator (one process for every tenant) sums the ``stats.worker.*`` keys of each
connection's KV bucket, which the connection's pods write. Here a "compromised worker"
writes as it likes into a bucket provisioned exactly as the operator provisions it, on the
real nats-server: values over the bucket's max value size are refused by the server, and
however many keys it writes, the operator's read stays bounded in memory and time.
"""

from __future__ import annotations

import itertools
import json
import time
import tracemalloc
from datetime import UTC, datetime

import nats
import pytest
from nats.js.errors import APIError

from akeneo_connector.guard_state import stats_key
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import StreamSpec
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.streams import NatsLink
from akeneo_testing.ground.nats import NatsServer

_names = itertools.count()
BIG = 64 * 1024
READ_MEMORY_BOUND = 16 * 1024 * 1024  # bytes the operator may allocate for one read
READ_TIME_BOUND = 30.0  # seconds, for a loaded 2-core machine (the read stops at 10 s)


def stats(applied: int, size: int) -> bytes:
    """A valid WorkerStats value, padded to ``size`` bytes (unknown fields are ignored)."""
    body = {"applied": applied, "updated_at": datetime.now(UTC).isoformat(), "pad": ""}
    body["pad"] = "x" * max(0, size - len(json.dumps(body)))
    return json.dumps(body).encode()


async def test_the_operator_read_of_a_flooded_bucket_is_bounded(nats_server: NatsServer) -> None:
    names = ConnectionNames("tenant-hostile", f"flood-{next(_names)}")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_all(js, names, StreamSpec())  # what the operator provisions
    kv = await js.key_value(names.guard_bucket)
    link = NatsLink(OperatorSettings(nats_url=nats_server.url, priority=1))
    try:
        await kv.put(stats_key("honest-worker-0"), stats(7, 200))
        try:
            await kv.put(stats_key("compromised"), stats(1, BIG))
            size, keys = BIG, 1000  # the bucket takes anything: flood it with big values
        except APIError as exc:
            assert "message size exceeds maximum allowed" in str(exc), exc
            info = await js.stream_info(f"KV_{names.guard_bucket}")
            size, keys = int(info.config.max_msg_size or 0), 3000  # flood with many keys
            assert 0 < size <= 4096
        for n in range(keys):
            await kv.put(stats_key(f"compromised-{n}"), stats(1, size))

        tracemalloc.start()
        started = time.monotonic()
        counters = await link.counters(names)
        elapsed = time.monotonic() - started
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        assert counters is not None
        assert counters["applied"] >= 7  # the honest worker's count is read first
        assert peak < READ_MEMORY_BOUND, f"the operator held {peak / 2**20:.1f} MiB"
        assert elapsed < READ_TIME_BOUND, f"the operator read for {elapsed:.1f} s"
        print(f"flood: {keys} keys of {size} B; read peak {peak / 2**20:.2f} MiB, "
              f"{elapsed:.2f} s, applied {counters['applied']}")  # fmt: skip
    finally:
        await link.close()
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            await js.delete_stream(stream)
        await nc.close()


async def test_an_existing_bucket_gets_the_bound(nats_server: NatsServer) -> None:
    """A bucket provisioned before the bound is repaired by the operator's next ensure."""
    names = ConnectionNames("tenant-hostile", f"old-{next(_names)}")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await ensure_all(js, names, StreamSpec())
        info = await js.stream_info(f"KV_{names.guard_bucket}")
        info.config.max_msg_size = -1  # as buckets were created before
        await js.update_stream(config=info.config)
        _stream, bucket = await ensure_all(js, names, StreamSpec())
        assert "max_msg_size" in bucket.changed_fields  # the bucket stream's name of it
        kv = await js.key_value(names.guard_bucket)
        with pytest.raises(APIError, match="message size exceeds maximum allowed"):
            await kv.put(stats_key("compromised"), stats(1, BIG))
    finally:
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            await js.delete_stream(stream)
        await nc.close()
