"""The structure listings' pure helpers: the ISO 8601 ``updated >`` value, option paths and keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from akeneo_connector.event_types import attribute_option_key
from akeneo_pim.structure import (
    attribute_option_path,
    attribute_options_path,
    iso_filter_date,
    split_option_key,
    updated_after,
)


def test_the_updated_filter_is_iso_8601_in_utc_to_the_second() -> None:
    """https://api.akeneo.com/rest-api/filter.html#filter-families: "you have to write dates in
    either of these format 2021-05-17T15:19:32Z, or 2021-05-17T15:19:32+00:00"."""
    paris = timezone(timedelta(hours=2))
    when = datetime(2021, 5, 17, 17, 19, 32, 999_999, tzinfo=paris)
    assert iso_filter_date(when) == "2021-05-17T15:19:32Z"
    assert updated_after(when) == {"updated": [{"operator": ">", "value": "2021-05-17T15:19:32Z"}]}
    with pytest.raises(ValueError, match="aware"):
        iso_filter_date(datetime(2021, 5, 17))
    assert iso_filter_date(datetime(2021, 5, 17, tzinfo=UTC)) == "2021-05-17T00:00:00Z"


def test_option_paths_quote_their_codes() -> None:
    assert attribute_options_path("color") == "/api/rest/v1/attributes/color/options"
    assert attribute_option_path("color", "red") == "/api/rest/v1/attributes/color/options/red"
    assert (
        attribute_option_path("a b", "x/y?z") == "/api/rest/v1/attributes/a%20b/options/x%2Fy%3Fz"
    )


@pytest.mark.parametrize(
    ("key", "parts"),
    [("color/red", ("color", "red")), ("size/m", ("size", "m")), ("a/b/c", ("a", "b/c")),
     ("red", None), ("/red", None), ("color/", None), ("", None)],
)  # fmt: skip
def test_option_keys_split_back_into_attribute_and_code(
    key: str, parts: tuple[str, str] | None
) -> None:
    assert split_option_key(key) == parts
    if parts is not None and "/" not in parts[1]:
        assert attribute_option_key(*parts) == key
