"""A tenant's PostgreSQL DSN, checked before libpq sees it.

libpq does far more than connect to a host: ``host=/path`` opens a Unix socket, ``hostaddr``
connects somewhere else than the host that is checked, ``passfile``, ``sslkey``, ``sslcert``,
``sslrootcert``, ``sslcrl``, ``service`` and friends read files of the worker's machine,
``sslkeylogfile`` writes one, ``oauth_issuer`` fetches URLs, ``requirepeer`` and the GSSAPI
parameters use local credentials. So a DSN is parsed with libpq's own parser and only an
allow-list of parameters passes (new libpq parameters are refused until reviewed). At
connect time every host is resolved, each address is checked against the platform's address
policy (``akeneo_connector.addresses``) and libpq is given the checked addresses
(``hostaddr``) so it never resolves the name again.

Refusals are one fixed message per class (the DSN's syntax, a parameter, the hosts' form,
an address) and never repeat the DSN, nor libpq's parse error (which quotes it, password
included), nor what a host resolved to.
"""

from __future__ import annotations

import re
from typing import Any

from akeneo_connector.addresses import RefusedAddress, literal_refused, parse_ip, resolve_allowed

# Parameters a tenant's DSN may carry (libpq 18's list, reviewed). Everything else is refused.
ALLOWED = frozenset(
    {
        "host", "port", "dbname", "user", "password",
        "connect_timeout", "client_encoding", "options",
        "application_name", "fallback_application_name",
        "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout",
        "sslmode", "sslnegotiation", "sslcompression", "sslsni",
        "ssl_min_protocol_version", "ssl_max_protocol_version",
        "min_protocol_version", "max_protocol_version",
        "require_auth", "channel_binding",
        "target_session_attrs", "load_balance_hosts",
        "sslrootcert", "sslcertmode",
    }
)  # fmt: skip
# Allowed parameters whose other values read local files.
ONLY_VALUES = {
    "sslrootcert": frozenset({"system"}),  # the system's CA store, never a path
    "sslcertmode": frozenset({"disable"}),  # never send a client certificate found on disk
}
_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)
DEFAULT_PORT = 5432
MAX_HOSTS = 8


class DsnRefused(ValueError):
    """A DSN the platform does not connect with; the message never quotes the DSN."""

    def __init__(self, message: str, *, address: bool = False) -> None:
        self.address = address  # the hosts' addresses, not the DSN's form, were refused
        super().__init__(message)


NOT_A_DSN = "not a valid PostgreSQL connection string"
HOSTS_FORM = "host must be one or more host names or IP addresses (Unix sockets are not allowed)"
HOSTS_REFUSED = (
    "host refused: it does not resolve, or resolves to a private, loopback, link-local, "
    "metadata or reserved address"
)


def parameter_refused(key: str) -> str:
    return f"parameter {key} is not allowed (only reviewed connection parameters are)"


def parse(dsn: str) -> dict[str, str]:
    """The DSN's parameters as libpq reads them (key=value or URI form), checked for form:
    allowed parameters and values, hosts that are names or IP addresses, matching ports."""
    from psycopg import conninfo  # libpq's own parser; loaded only where a DSN is checked

    try:
        params = {k: str(v) for k, v in conninfo.conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # psycopg.ProgrammingError quotes the DSN: never pass it on
        raise DsnRefused(NOT_A_DSN) from None
    for key in sorted(params):
        if key not in ALLOWED:
            raise DsnRefused(parameter_refused(key))
        only = ONLY_VALUES.get(key)
        if only is not None and params[key] not in only:
            raise DsnRefused(f"parameter {key} may only be {' or '.join(sorted(only))}")
    dbname = params.get("dbname", "")
    if "=" in dbname or re.match(r"^postgres(ql)?://", dbname):
        raise DsnRefused(parameter_refused("dbname"))  # libpq may expand it as a DSN
    hosts(params)
    return params


def hosts(params: dict[str, str]) -> list[tuple[str, int]]:
    """``(host, port)`` of each host of the DSN; ``DsnRefused`` unless each is a host name
    or an IP address (libpq's defaults — a Unix socket — are never used)."""
    names = params.get("host", "").split(",")
    ports = params.get("port", "").split(",") if params.get("port") else [""]
    if not 1 <= len(names) <= MAX_HOSTS or len(ports) not in (1, len(names)):
        raise DsnRefused(HOSTS_FORM)
    out: list[tuple[str, int]] = []
    for index, name in enumerate(names):
        name = name.strip()
        if parse_ip(name) is None and not _HOST_NAME.match(name):
            raise DsnRefused(HOSTS_FORM)  # empty, /socket/dir, @abstract, anything odd
        raw = (ports[index] if len(ports) > 1 else ports[0]).strip()
        try:
            port = int(raw) if raw else DEFAULT_PORT
        except ValueError:
            raise DsnRefused(HOSTS_FORM) from None
        if not 0 < port < 65536:
            raise DsnRefused(HOSTS_FORM)
        out.append((name, port))
    return out


def check(dsn: str, *, allow_private: bool) -> dict[str, str]:
    """What can be said without DNS (the operator, at spec time): ``parse`` plus, unless
    private addresses are allowed, no host that is a refused IP literal or ``localhost``."""
    params = parse(dsn)
    if not allow_private and any(literal_refused(h) for h, _port in hosts(params)):
        raise DsnRefused(HOSTS_REFUSED, address=True)
    return params


async def connect_params(dsn: str, *, allow_private: bool) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.AsyncConnection.connect``, checked now (call it at
    every connection): each host resolved, each address checked and pinned as ``hostaddr``,
    one connection attempt per address. ``DsnRefused`` when anything is refused."""
    params = check(dsn, allow_private=allow_private)
    if allow_private:
        return dict(params)
    host_list: list[str] = []
    addresses: list[str] = []
    ports: list[str] = []
    try:
        for name, port in hosts(params):
            for _family, address in await resolve_allowed("postgres", name, port):
                host_list.append(name)
                addresses.append(address)
                ports.append(str(port))
    except RefusedAddress:  # refused, or a name that does not resolve: the same answer
        raise DsnRefused(HOSTS_REFUSED, address=True) from None
    return {
        **params,
        "host": ",".join(host_list),
        "hostaddr": ",".join(addresses),
        "port": ",".join(ports),
    }
