"""A PIM that answers with Akeneo's verbatim sample bodies, over real TLS, recording requests."""

from __future__ import annotations

import ssl
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

from akeneo_pim.rest import AkeneoRestClient, PimCredentials
from akeneo_testing.ground.tls import CertificateAuthority
from tests.samples import Sample

CREDENTIALS = PimCredentials.model_validate(
    {
        "client_id": "4gm4rnoizp8gskgkk080ssoo80040g44ksowwgw844k44sc00s",
        "client_secret": "5dyvo1z6y34so4ogkgksw88ookoows00cgoc488kcs8wk4c40s",
        "username": "myERPuser",
        "password": "64bngr78",
    }
)  # Akeneo's authentication page's example credentials


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, sample: Sample) -> Answer:
        """A sample served as documented: its status, its headers, its bytes."""
        status = int(sample.http.get("status_line", "HTTP/1.1 200 OK").split()[1])
        headers = dict(sample.http.get("headers", {}))
        body = sample.body if sample.file is not None else b""
        if body:
            headers.setdefault("Content-Type", "application/json")
        return cls(status, body, headers)


@dataclass(frozen=True)
class Seen:
    method: str
    path_qs: str
    authorization: str
    body: bytes


class VerbatimPim:
    """Routes ``(method, path)`` to answers served in order (the last one repeats)."""

    def __init__(self, tmp: Path, ca: CertificateAuthority) -> None:
        self._tmp, self._ca = tmp, ca
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[Seen] = []
        self._served: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def route(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path_qs.split("?")[0] == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path_qs, request.headers.get("Authorization", ""), body)
        )
        key = (request.method, request.path)
        answers = self.routes.get(key)
        if not answers:
            return web.Response(status=599, text=f"no verbatim answer for {key}")
        n = self._served[key]
        self._served[key] += 1
        answer = answers[min(n, len(answers) - 1)]
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def __aenter__(self) -> VerbatimPim:
        pair = self._ca.issue("127.0.0.1")
        pair.write(self._tmp / "pim.crt", self._tmp / "pim.key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tmp / "pim.crt", self._tmp / "pim.key")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def client(self, **kwargs: object) -> AkeneoRestClient:
        kwargs.setdefault("backoff_base", 0.005)
        kwargs.setdefault("verify", self._ca.client_context())
        kwargs.setdefault("allow_private", True)  # the verbatim PIM is on 127.0.0.1
        return AkeneoRestClient(self.url, CREDENTIALS, **kwargs)  # type: ignore[arg-type]
