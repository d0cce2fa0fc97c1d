"""PipelinedKV against a real bucket: CAS semantics equal to nats-py's KeyValue."""

from __future__ import annotations

from nats.js import JetStreamContext

from akeneo_connector.kv_pipeline import PipelinedKV, Read, Write, WrongRevision
from akeneo_connector.names import ConnectionNames


async def test_batched_reads_and_compare_and_set_writes(
    js: JetStreamContext, names: ConnectionNames
) -> None:
    kv = await js.key_value(names.guard_bucket)
    pipelined = PipelinedKV(js._nc, names.guard_bucket)
    try:
        created = await pipelined.write_many([Write("k.a", b"1", 0), Write("k.b", b"1", 0)])
        assert all(isinstance(r, int) for r in created)
        rev_a, rev_b = created
        assert isinstance(rev_a, int) and isinstance(rev_b, int)
        again = await pipelined.write_many(
            [Write("k.a", b"2", 0), Write("k.b", b"2", rev_b), Write("k.a", None, rev_a)]
        )
        assert isinstance(again[0], WrongRevision)  # exists already
        assert isinstance(again[1], int) and isinstance(again[2], int)  # update, delete marker
        assert (await kv.get("k.b")).value == b"2"
        reads = await pipelined.read_many(["k.a", "k.b", "k.none"])
        assert reads[0] == Read(None, again[2])  # deleted: no value, the marker's revision
        assert reads[1] == Read(b"2", again[1])
        assert reads[2] == Read(None, 0)
        recreated = await pipelined.write_many([Write("k.a", b"3", again[2])])
        assert isinstance(recreated[0], int)
    finally:
        await pipelined.close()
