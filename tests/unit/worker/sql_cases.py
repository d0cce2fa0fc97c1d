"""The SQL sinks' self-guarding rule as cases, shared by the sqlite and postgres tests.

Each case applies batches in order to a fresh table and states what the table and its
tombstone table hold afterwards (key -> version number). ``histories`` are sets of changes
to one resource that must end on the newest whatever the order they are applied in.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from akeneo_connector.changes import Change

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def up(key: str, n: int, content: str = "") -> Change:
    return Change(
        connection="t/c", kind="product", key=key, operation="upsert", version=version(n),
        event_id=f"{key}-{n}", resource={"uuid": key, "n": n, "content": content},
    )  # fmt: skip


def rm(key: str, n: int) -> Change:
    return Change(
        connection="t/c", kind="product", key=key, operation="delete", version=version(n),
        event_id=f"{key}-{n}-rm", resource=None,
    )  # fmt: skip


@dataclass(frozen=True)
class Case:
    batches: list[list[Change]]
    rows: dict[str, int]
    tombstones: dict[str, int]


CASES = {
    "older update after a removal is refused": Case(
        [[up("a", 1)], [rm("a", 3)], [up("a", 2)]], {}, {"a": 3}
    ),
    "a removal wins over an update of the same version": Case(
        [[rm("a", 3)], [up("a", 3)]], {}, {"a": 3}
    ),
    "the same version removed after the update": Case([[up("a", 3)], [rm("a", 3)]], {}, {"a": 3}),
    "removal of a resource never seen still blocks older updates": Case(
        [[rm("a", 3)], [up("a", 2)]], {}, {"a": 3}
    ),
    "a newer update re-creates the row and drops the tombstone": Case(
        [[rm("a", 3)], [up("a", 4)]], {"a": 4}, {}
    ),
    "an older removal changes nothing": Case([[up("a", 5)], [rm("a", 4)]], {"a": 5}, {}),
    "the tombstone keeps the newest removal": Case(
        [[rm("a", 5)], [rm("a", 3)], [up("a", 4)]], {}, {"a": 5}
    ),
    "an older update never goes back": Case([[up("a", 5)], [up("a", 3)]], {"a": 5}, {}),
    "the same change twice is idempotent": Case(
        [[up("a", 5), rm("b", 2)], [up("a", 5), rm("b", 2)]], {"a": 5}, {"b": 2}
    ),
    "mixed batches": Case(
        [[up("a", 2), rm("b", 3), up("c", 1)], [up("b", 2), rm("a", 1), up("c", 2), rm("d", 1)]],
        {"a": 2, "c": 2},
        {"b": 3, "d": 1},
    ),
}

HISTORIES = {
    "update, removal, update, removal": [up("a", 1), rm("a", 2), up("a", 3), rm("a", 4)],
    "removal, re-creation": [up("a", 1), rm("a", 2), up("a", 3)],
    "updates and a tie-breaking removal": [up("a", 1), up("a", 2), rm("a", 2)],
}


def newest(history: list[Change]) -> tuple[dict[str, int], dict[str, int]]:
    """What the tables hold once every change of one resource's history is applied."""
    last = max(history, key=lambda c: (c.version, c.deleted))
    n = int((last.version - T0).total_seconds())
    return ({}, {last.key: n}) if last.deleted else ({last.key: n}, {})


def orders() -> list[Any]:
    """Every order of every history, as pytest parameters."""
    return [
        pytest.param(list(order), newest(history), id=f"{name}-{i}")
        for name, history in HISTORIES.items()
        for i, order in enumerate(itertools.permutations(history))
    ]


Tables = tuple[dict[str, int], dict[str, int]]


def numbered(rows: dict[str, datetime]) -> dict[str, int]:
    return {key: int((v - T0).total_seconds()) for key, v in rows.items()}


async def apply_all(apply: Callable[[list[Change]], Awaitable[None]], batches: Any) -> None:
    for batch in batches:
        await apply(batch)
