"""The verbatim Akeneo samples (``tests/samples/akeneo/``) and their index.

Each sample is a body copied byte for byte from Akeneo's published documentation, with the
page it came from, the docs-repository path and commit, what it is, and what the connector
must do with it (``expect``). ``tests.samples.extract`` re-extracts them from the docs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "akeneo"


@dataclass(frozen=True)
class Sample:
    name: str  # the file's path without ".json" (``rest/error-429`` has no file)
    file: str | None
    format: str  # event_platform | notification | events_api | rest | management | signature
    url: str
    source: dict[str, str]
    what: str
    expect: dict[str, Any]
    http: dict[str, Any]
    sha256: str | None

    @property
    def path(self) -> Path:
        assert self.file is not None, f"{self.name} has no body"
        return CORPUS / self.file

    @property
    def body(self) -> bytes:
        """The bytes to send (or serve) as they are: never re-serialized."""
        return self.path.read_bytes()

    def json(self) -> Any:
        return json.loads(self.body)


@cache
def all_samples() -> tuple[Sample, ...]:
    index = json.loads((CORPUS / "index.json").read_text(encoding="utf-8"))
    return tuple(
        Sample(
            name=entry["name"],
            file=entry["file"],
            format=entry["format"],
            url=entry["url"],
            source=entry["source"],
            what=entry["what"],
            expect=entry["expect"],
            http=entry.get("http", {}),
            sha256=entry.get("sha256"),
        )
        for entry in index["samples"]
    )


def samples(fmt: str) -> list[Sample]:
    return [s for s in all_samples() if s.format == fmt]


def sample(name: str) -> Sample:
    """The sample named ``name``: its file's path without ".json", e.g. ``rest/family``."""
    for s in all_samples():
        if s.name == name:
            return s
    raise KeyError(name)
