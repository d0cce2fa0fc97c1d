"""The README's table of Event Platform types says what the receiver does with each."""

from __future__ import annotations

from pathlib import Path

from akeneo_connector import event_types

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("**What is handled.**")
    return text[start : text.index("**Answers.**", start)]


def _row_of(event_type: str) -> str:
    """The table row naming ``event_type``: by its full name, as ``.verb`` after its resource,
    or as ``<resource>.*``."""
    short = event_type.removeprefix(event_types.PREFIX)
    resource, _, verb = short.partition(".")
    for row in _section().splitlines():
        cells = row.split("|")
        if len(cells) < 3:
            continue
        names = cells[1]
        if f"`{short}`" in names or f"`{resource}.*`" in names:
            return cells[2]
        if f"`{resource}." in names and f"`.{verb}`" in names:
            return cells[2]
    raise AssertionError(f"{event_type} is not in the README's table")


def test_every_reference_type_is_in_the_readme_with_what_happens_to_it() -> None:
    for event_type in event_types.REFERENCE:
        row = _row_of(event_type)
        handled = event_types.handled(event_type)
        if handled is None:
            assert "ignored" in row, event_type
        else:
            assert "ignored" not in row, event_type
            word = "upsert" if handled.action.value == "upsert" else "removal"
            assert word in row, event_type
