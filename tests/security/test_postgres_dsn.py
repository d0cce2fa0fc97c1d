"""Issue 15 row 8: a tenant's postgres DSN reaches only a database the platform allows.

Against the test ground's PostgreSQL (trust authentication on 127.0.0.1 and on its Unix
socket: whatever gets through writes a table). The sink is opened the way the worker opens
it; a refused DSN must leave no table behind, and say one fixed sentence per class:
- the address: ``localhost``, a private literal and a name that does not resolve get the
  very same refusal (no oracle on the platform's DNS);
- Unix sockets (``host=/dir``), and every libpq parameter that reads or writes local files,
  uses local credentials or bypasses the host check — refused even where private addresses
  are allowed (``allow_private=True``, the platform's opt-in, makes 127.0.0.1 reachable here
  so only the parameter stands in the way).
(The operator's spec-time refusal is in ``test_spec_refusals``.)
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest

from akeneo_connector import pgdsn
from akeneo_testing.ground.postgres import PostgresServer
from akeneo_worker.sinks.base import SinkError
from akeneo_worker.sinks.postgres import PostgresSink

_tables = itertools.count()


def has_table(server: PostgresServer, name: str) -> bool:
    with psycopg.connect(server.dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


async def refusal(server: PostgresServer, dsn: str, *, allow_private: bool = False) -> str:
    """Open the sink; return its refusal, after checking nothing reached the database."""
    table = f"dsn_{next(_tables)}"
    sink = PostgresSink(dsn, table=table, allow_private=allow_private)
    try:
        with pytest.raises(SinkError) as refused:
            await sink.open()
    finally:
        await sink.close()
    assert not has_table(server, table), f"{dsn!r} reached the database"
    return str(refused.value)


async def test_internal_hosts_get_one_refusal_whatever_they_are(
    postgres_server: PostgresServer,
) -> None:
    port = postgres_server.port
    messages = set()
    for host in ("localhost", "127.0.0.1", "no-such-db.invalid", "[::ffff:127.0.0.1]"):
        dsn = f"postgresql://postgres@{host}:{port}/postgres"
        messages.add((await refusal(postgres_server, dsn)).replace(host.strip("[]"), "H"))
    # does it exist? where does it point? not said: one sentence for all
    assert messages == {f"postgres DSN: {pgdsn.HOSTS_REFUSED}"}, messages


@pytest.mark.parametrize(
    "dsn",
    [
        "host={socket} port={port} user=postgres dbname=postgres",
        "postgresql://postgres@{socket_q}:{port}/postgres",
        "postgresql:///postgres?host={socket}&port={port}&user=postgres",
        "port={port} user=postgres dbname=postgres",  # no host: libpq's default socket
        "host=@abstract port={port} user=postgres dbname=postgres",
    ],
    ids=["key-value", "uri-host", "uri-query", "no-host", "abstract"],
)
async def test_unix_sockets_are_refused(postgres_server: PostgresServer, dsn: str) -> None:
    socket_dir = str(postgres_server.data_dir)
    text = dsn.format(
        socket=socket_dir, socket_q=socket_dir.replace("/", "%2F"), port=postgres_server.port
    )
    message = await refusal(postgres_server, text, allow_private=True)
    assert message == f"postgres DSN: {pgdsn.HOSTS_FORM}"


# parameter -> a value; each reads/writes local files, uses local credentials or goes
# around the host check. The DSN otherwise points at the trust-auth database.
FORBIDDEN = {
    "hostaddr": "127.0.0.1",  # connect here, whatever host says (host=a public name)
    "passfile": "/etc/shadow",
    "sslkey": "/etc/ssl/private/ssl-cert-snakeoil.key",
    "sslcert": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
    "sslpassword": "x",
    "sslcrl": "/etc/hostname",
    "sslcrldir": "/etc",
    "sslkeylogfile": "/tmp/akeneo-keylog",
    "service": "platform",
    "requirepeer": "postgres",
    "krbsrvname": "postgres",
    "gsslib": "gssapi",
    "gssdelegation": "1",
    "gssencmode": "prefer",
    "replication": "database",
    "oauth_issuer": "https://169.254.169.254/",
    "oauth_client_id": "x",
    "oauth_client_secret": "x",
    "oauth_scope": "x",
    "scram_client_key": "AAAA",
    "scram_server_key": "AAAA",
}


@pytest.mark.parametrize(("key", "value"), FORBIDDEN.items(), ids=list(FORBIDDEN))
async def test_parameters_that_read_local_files_are_refused(
    postgres_server: PostgresServer, key: str, value: str
) -> None:
    host = "db.example.com" if key == "hostaddr" else "127.0.0.1"
    dsn = f"host={host} port={postgres_server.port} user=postgres dbname=postgres {key}={value}"
    message = await refusal(postgres_server, dsn, allow_private=True)
    assert message == f"postgres DSN: {pgdsn.parameter_refused(key)}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sslrootcert", "/etc/ssl/certs/ca-certificates.crt"),
        ("sslcertmode", "require"),
    ],
)
async def test_file_values_of_allowed_parameters_are_refused(
    postgres_server: PostgresServer, key: str, value: str
) -> None:
    dsn = f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres {key}={value}"
    message = await refusal(postgres_server, dsn, allow_private=True)
    assert message.startswith(f"postgres DSN: parameter {key} may only be")


async def test_a_service_file_of_the_platform_is_not_used(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``service=`` names a connection in the machine's service file: the platform's, not the
    tenant's; it must not pick the platform's database without any host check."""
    services = tmp_path / "pg_service.conf"
    services.write_text(
        f"[platform]\nhost=127.0.0.1\nport={postgres_server.port}\nuser=postgres\ndbname=postgres\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    message = await refusal(postgres_server, "service=platform")
    assert message == f"postgres DSN: {pgdsn.parameter_refused('service')}"


async def test_a_malformed_dsn_is_not_repeated(postgres_server: PostgresServer) -> None:
    secret = "pw-7c1e-never-in-errors"
    for dsn in (
        f"host=db.example.com password='{secret} dbname=x",  # unterminated quote
        f"postgresql://u:{secret}@db.example.com:notaport/x",
        f"host=db.example.com password={secret} nosuchparameter=1",
    ):
        message = await refusal(postgres_server, dsn)
        assert secret not in message and "db.example.com" not in message
        fixed = (pgdsn.NOT_A_DSN, pgdsn.HOSTS_FORM)
        assert message in {f"postgres DSN: {m}" for m in fixed}, message


async def test_an_allowed_dsn_still_writes(postgres_server: PostgresServer) -> None:
    """The platform's opt-in (here: the test ground's database on 127.0.0.1)."""
    dsn = f"{postgres_server.dsn}?sslmode=disable&application_name=akeneo&connect_timeout=5"
    sink = PostgresSink(dsn, table="dsn_allowed", allow_private=True)
    await sink.open()
    await sink.close()
    assert has_table(postgres_server, "dsn_allowed")
