"""The verbatim corpus is intact, covers Akeneo's whole event reference, and its independently
pinned signatures and change ids agree with the project's code (and with OpenSSL, run now)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import datetime

import pytest

from akeneo_connector import event_types
from akeneo_connector.changes import Change
from akeneo_pim.signatures import (
    event_platform_headers,
    events_api_headers,
    notification_headers,
    sign_event_platform,
    sign_events_api,
    verify_event_platform,
    verify_events_api,
    verify_notification,
)
from tests.samples import CORPUS, Sample, all_samples, pinned, sample, samples

EP = samples("event_platform")
REFERENCE_SAMPLES = [s for s in EP if s.expect["status"] == 200]
LEGACY = samples("events_api")


def _id(s: Sample) -> str:
    return s.name


def test_every_indexed_body_is_the_extracted_bytes() -> None:
    """A formatter or an editor that 'fixed' a sample would change its digest."""
    for s in all_samples():
        if s.file is None:
            continue
        data = s.body
        assert hashlib.sha256(data).hexdigest() == s.sha256, f"{s.file} changed since extraction"
        assert s.url.startswith("https://api.akeneo.com/"), s.url
        assert len(s.source["commit"]) == 40 and s.source["path"].startswith("content/")


def test_every_file_of_the_corpus_is_indexed() -> None:
    indexed = {s.file for s in all_samples() if s.file}
    on_disk = {
        str(p.relative_to(CORPUS))
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "index.json"
    }
    assert on_disk == indexed


def test_the_corpus_holds_one_sample_of_every_type_of_akeneos_reference() -> None:
    """All 37 types of https://api.akeneo.com/event-platform/available-events.html, and the
    project's catalogue (``event_types.REFERENCE``) is exactly that list."""
    types = [s.expect["type"] for s in REFERENCE_SAMPLES]
    assert len(types) == len(set(types)) == 37
    assert set(types) == set(event_types.REFERENCE)


@pytest.mark.parametrize("s", REFERENCE_SAMPLES, ids=_id)
def test_handled_types_agree_with_the_issue(s: Sample) -> None:
    """What the index says (written from issue 13) is what ``event_types`` implements."""
    meaning = event_types.handled(s.expect["type"])
    if s.expect["outcome"] == "ignored":
        assert meaning is None
        return
    assert meaning is not None
    assert meaning.kind.value == s.expect["kind"]
    assert meaning.action.value == s.expect["action"]
    ref = s.json()["data"][meaning.data_key]
    if meaning.kind.value == "attribute_option":
        key = event_types.attribute_option_key(ref["attribute"]["code"], ref["code"])
    else:
        key = ref[meaning.id_field]
    assert key == s.expect["key"]


def test_akeneos_samples_reuse_a_few_ids() -> None:
    """Why the replay tests use a fresh stream per sample: JetStream de-duplicates on the id."""
    ids = {s.json()["id"] for s in REFERENCE_SAMPLES}
    assert len(ids) == 3  # 37 types, 3 ids
    assert len({e["event_id"] for s in LEGACY for e in s.expect["events"]}) == 1


def test_akeneos_attribute_option_samples_carry_another_types_dataschema() -> None:
    """Published as is: the connector must go by ``type``, never by ``dataschema``."""
    for verb in ("created", "updated", "deleted"):
        doc = sample(f"event-platform/com.akeneo.pim.v1.attribute-option.{verb}").json()
        assert doc["type"].endswith(f"attribute-option.{verb}")
        assert "reference-entity-record" in doc["dataschema"]


# --- signatures pinned by OpenSSL at authoring time ---------------------------------------


@pytest.mark.parametrize("s", EP, ids=_id)
def test_event_platform_signature_matches_the_pinned_openssl_value(s: Sample) -> None:
    assert s.file is not None
    expected = pinned.event_platform_signature(s.file)
    assert sign_event_platform(pinned.EP_SECRET, s.body) == expected
    headers = event_platform_headers(pinned.EP_SECRET, s.body)
    assert headers["X-AKENEO-SIGNATURE-PRIMARY"] == expected
    assert headers["X-AKENEO-SIGNATURE-ALGORITHM"] == "HmacSHA256"
    verify_event_platform(
        [pinned.EP_SECRET],
        {"X-AKENEO-SIGNATURE-PRIMARY": expected, "X-AKENEO-SIGNATURE-ALGORITHM": "HmacSHA256"},
        s.body,
    )


def test_notification_signature_matches_the_pinned_openssl_value() -> None:
    body = samples("notification")[0].body
    assert sign_event_platform(pinned.NOTIFICATION_SECRET, body) == pinned.NOTIFICATION
    assert notification_headers(pinned.NOTIFICATION_SECRET, body) == {
        "X-AKENEO-SIGNATURE-PRIMARY": pinned.NOTIFICATION,
        "X-AKENEO-SIGNATURE-ALGORITHM": "HmacSHA256",
        "Content-Type": "application/json",
        "User-Agent": "akeneo/event-platform",
    }
    verify_notification(
        [pinned.NOTIFICATION_SECRET],
        {
            "X-AKENEO-SIGNATURE-PRIMARY": pinned.NOTIFICATION,
            "X-AKENEO-SIGNATURE-ALGORITHM": "HmacSHA256",
        },
        body,
    )


@pytest.mark.parametrize("s", LEGACY, ids=_id)
def test_events_api_signature_matches_the_pinned_openssl_value(s: Sample) -> None:
    assert s.file is not None
    expected = pinned.events_api_signature(s.file)
    assert sign_events_api(pinned.LEGACY_SECRET, pinned.LEGACY_TIMESTAMP, s.body) == expected
    headers = events_api_headers(pinned.LEGACY_SECRET, s.body, pinned.LEGACY_TIMESTAMP)
    assert headers["X-Akeneo-Request-Signature"] == expected
    verify_events_api(
        [pinned.LEGACY_SECRET],
        {
            "X-Akeneo-Request-Signature": expected,
            "X-Akeneo-Request-Timestamp": str(pinned.LEGACY_TIMESTAMP),
        },
        s.body,
        now=pinned.LEGACY_TIMESTAMP + 1,
        tolerance=300,
    )


def test_akeneos_php_signature_example_builds_the_message_as_we_do() -> None:
    """https://api.akeneo.com/events-documentation/security.html signs "<ts>." + body; its
    body is elided ("..."), so its printed signature cannot be reproduced: the inputs can."""
    doc = samples("signature")[0].expect
    body = doc["request_body"].encode()
    ours = sign_events_api(doc["secret"], int(doc["timestamp"]), body)
    assert ours == pinned.DOC_PHP_EXAMPLE
    assert ours != doc["published_signature"]  # made from the full, unpublished body


# --- OpenSSL, run now -----------------------------------------------------------------------


def _openssl() -> str:
    path = shutil.which("openssl")
    assert path is not None, "openssl is missing: install it with `make sysdeps` (Debian package)"
    return path


def _openssl_hmac(secret: str, message: bytes) -> str:
    out = subprocess.run(
        [_openssl(), "dgst", "-sha256", "-hmac", secret],
        input=message,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return out.strip().rsplit("= ", 1)[1]


def test_openssl_agrees_with_our_signatures_on_every_sample_now() -> None:
    """The pinned table could be stale; OpenSSL recomputes every signature at run time."""
    for s in EP:
        assert _openssl_hmac(pinned.EP_SECRET, s.body) == sign_event_platform(
            pinned.EP_SECRET, s.body
        ), s.name
    for s in samples("notification"):
        assert _openssl_hmac(pinned.NOTIFICATION_SECRET, s.body) == pinned.NOTIFICATION
    for s in LEGACY:
        message = f"{pinned.LEGACY_TIMESTAMP}.".encode() + s.body
        assert _openssl_hmac(pinned.LEGACY_SECRET, message) == sign_events_api(
            pinned.LEGACY_SECRET, pinned.LEGACY_TIMESTAMP, s.body
        ), s.name


# --- change_id pinned by OpenSSL + jq at authoring time ----------------------------------


def test_change_id_of_a_legacy_sample_matches_the_independent_value() -> None:
    event = sample("events-api/serenity/product-created").json()["events"][0]
    resource = event["data"]["resource"]
    upsert = Change(
        connection=pinned.CONNECTION,
        kind="product",
        key=resource["uuid"],
        operation="upsert",
        version=datetime.fromisoformat(resource["updated"]),
        event_id=event["event_id"],
        resource=resource,
    )
    assert upsert.change_id == pinned.CHANGE_ID_PRODUCT_CREATED
    removed = sample("events-api/serenity/product-removed").json()["events"][0]
    delete = Change(
        connection=pinned.CONNECTION,
        kind="product",
        key=removed["data"]["resource"]["uuid"],
        operation="delete",
        version=datetime.fromisoformat(removed["event_datetime"]),
        event_id=removed["event_id"],
        resource=None,
    )
    assert delete.change_id == pinned.CHANGE_ID_PRODUCT_REMOVED


def test_the_index_is_valid_json_with_a_url_per_sample() -> None:
    index = json.loads((CORPUS / "index.json").read_text(encoding="utf-8"))
    assert len(index["samples"]) == len(all_samples()) >= 75
