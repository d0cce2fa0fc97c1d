"""The Event Platform filter grammar of
https://api.akeneo.com/event-platform/available-filters.html (examples verbatim)."""

from __future__ import annotations

import pytest

from akeneo_connector.event_filters import Bool, FilterError, Match, Not, matches, parse_filter
from tests.samples import sample


@pytest.mark.parametrize(
    "expression",
    [
        'user="57616f6f-1a4d-490e-bc23-c5877d2b30d9"',
        'user_type="api"',
        'attribute="description"',
        'scope="ecommerce"',
        'locale="en_US"',
        'locale in ["en_US", "fr_FR"]',
        'user="john-uuid" and attribute="price"',
        'attribute="description" or attribute="title"',
        'attribute in ["description", "title"]',
        'not user="system"',
        'not (attribute in ["price", "internal_notes"])',
        '(attribute="name" and locale="fr_FR") and not user="system"',
        'user="system" and (attribute="name" or attribute="description")',
        'channel="mobile"',
    ],
)
def test_the_documented_filters_parse(expression: str) -> None:
    parse_filter(expression)


def test_precedence_and_grouping() -> None:
    tree = parse_filter('user="system" and (attribute="name" or attribute="description")')
    assert tree == Bool(
        "and",
        Match("user", ("system",)),
        Bool("or", Match("attribute", ("name",)), Match("attribute", ("description",))),
    )
    assert parse_filter('not user="system"') == Not(Match("user", ("system",)))
    assert parse_filter('user="1" or locale="2" and scope="3"') == Bool(
        "or",
        Match("user", ("1",)),
        Bool("and", Match("locale", ("2",)), Match("scope", ("3",))),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("user=system", "double quotes"),  # the page's ❌ example
        ('price="1"', "unknown filter field"),
        ('user="x" and', "expected a field"),
        ('(user="x"', "expected )"),
        ('user="x")', "unexpected"),
        ('user="x" user="y"', "unexpected"),
        ("user in []", "quoted value"),
        (" or ".join(['user="x"'] * 12), "more than 10 operators"),  # "Maximum operators 10"
        ("(" * 6 + 'user="x"' + ")" * 6, "nested"),
        ('user="' + "x" * 495 + '"', "at most 500"),  # "Maximum length 500 characters"
        ("", "non-empty"),
        ('user="x" ; drop', "unexpected character"),
    ],
)
def test_refused_filters_say_why(expression: str, why: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    assert why in str(caught.value)


DELTA = sample("event-platform/com.akeneo.pim.v1.product.updated.delta").json()["data"]


@pytest.mark.parametrize(
    ("expression", "passes"),
    [
        ('user="julia"', True),  # the sample's author
        ('user_type="user"', True),
        ('not user_type="api"', True),
        ('user_type in ["api", "job"]', False),
        ('attribute="an_updated_attribute"', True),
        ('attribute in ["price", "a_pim_catalog_number_attribute"]', True),
        ('attribute="price"', False),
        ('locale="another_locale"', True),
        ('scope="a_scope" and not attribute="price"', True),
        ('channel="print"', False),
        ('(attribute="price" or user="julia") and locale="nowhere"', False),
    ],
)
def test_evaluated_on_the_reference_delta_event(expression: str, passes: bool) -> None:
    # https://api.akeneo.com/event-platform/available-events.html, product.updated.delta
    assert matches(parse_filter(expression), DELTA) is passes


def test_non_scopable_values_match_any_scope_and_plain_events_have_no_attribute() -> None:
    data = {
        "product": {"uuid": "u", "changes": {"values": {"name": [{"locale": "en_US",
                                                                  "scope": None}]}}},
        "author": {"identifier": "admin", "type": "user"},
    }  # fmt: skip
    assert matches(parse_filter('scope="ecommerce"'), data)
    assert not matches(parse_filter('locale="fr_FR"'), data)
    plain = {"product": {"uuid": "u"}, "author": {"identifier": "admin", "type": "user"}}
    assert not matches(parse_filter('attribute="name"'), plain)
    assert matches(parse_filter('user="admin"'), plain)
