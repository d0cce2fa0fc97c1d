"""Akeneo's concurrency limits, enforced by the simulator per client id and per instance.

https://api.akeneo.com/rest-api/good-practices.html: "Per PIM Connection: Up to 4 concurrent
API calls are allowed for each individual PIM connection." and "Per PIM Instance: Up to 10
concurrent API calls are allowed across the entire PIM instance." Overuse: "HTTP status code
429 responses", with a "Retry-After" header to honour.
"""

from __future__ import annotations

import asyncio

import httpx

from akeneo_pim.simulator import PimSimulator

PRODUCTS = "/api/rest/v1/products-uuid"
# every call is held this long by the simulator, so calls sent together overlap for sure even
# on a loaded machine (they are all sent within milliseconds)
HOLD = 1.5


async def _token(sim: PimSimulator, client_id: str, secret: str) -> str:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        answer = await http.post(
            "/api/oauth/v1/token",
            json={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
            auth=(client_id, secret),
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


async def _burst(sim: PimSimulator, tokens: list[str]) -> list[httpx.Response]:
    """One call per token, all at once (separate connections, as separate processes)."""
    async with httpx.AsyncClient(
        base_url=sim.url, limits=httpx.Limits(max_connections=len(tokens)), timeout=30
    ) as http:
        return list(
            await asyncio.gather(
                *(http.get(PRODUCTS, headers={"Authorization": f"Bearer {t}"}) for t in tokens)
            )
        )


async def test_a_fifth_concurrent_call_of_one_client_is_429() -> None:
    async with PimSimulator(products=5) as sim:
        token = await _token(sim, "sim-client", "sim-secret")
        sim.settings.latency = HOLD
        answers = await _burst(sim, [token] * 6)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 200, 200, 429, 429]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {
            "code": 429,
            "message": "You have exceeded the limit of API requests per second.",
        }
        stats = sim.stats
        assert stats.client_max_in_flight == {"sim-client": 4}
        assert stats.throttled_by == {"client_concurrency": 2}
        assert stats.throttled_429 == 2 and stats.in_flight == 0
        # the budget is back once the calls are answered
        sim.settings.latency = 0
        assert [a.status_code for a in await _burst(sim, [token] * 4)] == [200] * 4


async def test_ten_per_instance_whatever_the_clients() -> None:
    async with PimSimulator(products=5) as sim:
        tokens = []
        for n in range(3):
            sim.add_client(f"connection-{n}", f"secret-{n}")
            tokens += [await _token(sim, f"connection-{n}", f"secret-{n}")] * 4
        sim.settings.latency = HOLD
        answers = await _burst(sim, tokens)  # 3 connections x 4 calls: 12 > 10
        assert sorted(a.status_code for a in answers) == [200] * 10 + [429] * 2
        assert sim.stats.throttled_by == {"instance_concurrency": 2}
        assert sim.stats.max_in_flight == 10
        assert all(sim.stats.client_max_in_flight[f"connection-{n}"] <= 4 for n in range(3))


async def test_token_calls_count_for_their_client_and_limits_can_be_lifted() -> None:
    async with PimSimulator(products=5) as sim:
        sim.settings.latency = HOLD
        tokens = await asyncio.gather(*(_token_status(sim) for _ in range(5)))
        assert sorted(tokens) == [200] * 4 + [429]
        sim.settings.limit_concurrency = False
        assert sorted(await asyncio.gather(*(_token_status(sim) for _ in range(6)))) == [200] * 6


async def _token_status(sim: PimSimulator) -> int:
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        answer = await http.post(
            "/api/oauth/v1/token",
            json={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
            auth=("sim-client", "sim-secret"),
        )
        return answer.status_code


async def test_extra_clients_authenticate_with_their_own_user_only() -> None:
    async with PimSimulator(products=5) as sim:
        creds = sim.add_client("erp", "erp-secret", "erp-user", "erp-password")
        assert creds.client_id.get_secret_value() == "erp"
        async with httpx.AsyncClient(base_url=sim.url) as http:
            body = {"grant_type": "password", "username": "erp-user", "password": "erp-password"}
            good = await http.post("/api/oauth/v1/token", json=body, auth=("erp", "erp-secret"))
            assert good.status_code == 200
            token = good.json()["access_token"]
            assert sim.token_client(token) == "erp"
            other = await http.post(
                "/api/oauth/v1/token", json=body, auth=("sim-client", "sim-secret")
            )
            assert other.status_code == 401  # that user belongs to the other connection
            refresh = {"grant_type": "refresh_token", "refresh_token": good.json()["refresh_token"]}
            stolen = await http.post(
                "/api/oauth/v1/token", json=refresh, auth=("sim-client", "sim-secret")
            )
            assert stolen.status_code == 422  # a refresh token is bound to its client
        assert sim.token_client("nope") is None
