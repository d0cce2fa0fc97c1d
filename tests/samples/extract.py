"""Re-extract the verbatim Akeneo samples under ``tests/samples/akeneo/`` from Akeneo's docs repo.

Usage (a clone or mirror of ``akeneo/pim-api-docs``; bare repositories work)::

    python -m tests.samples.extract --docs-repo PATH           # check the corpus (exit 1 on drift)
    python -m tests.samples.extract --docs-repo PATH --write   # (re)write corpus and index.json

Every source is read at a pinned commit (``git show <commit>:<path>``), so a re-check gives the
same bytes whatever the clone's HEAD is. How a body is cut out of its page, byte for byte:

- Markdown pages (built by Akeneo with markdown-it): the content of the fenced code block as
  markdown-it yields it: the lines between the fences, the fence's own indentation removed
  from each line (CommonMark), leading blank lines and the final newline kept. Nothing is
  reformatted or fixed, not even a sample that is not valid JSON.
- ``http`` code blocks (status line, headers, blank line, body): the body after the first
  blank line; the status and headers go to the index.
- REST reference (``content/swagger/akeneo-web-api.json``, the compiled swagger that Akeneo's
  build renders into https://api.akeneo.com/api-reference-paas-70.html): the example value
  rendered as that build renders it, ``JSON.stringify(example, null, 2)``.

Expectations (``expect`` in the index) are written from Akeneo's documentation and issue 13's
contract, not from the connector's code, so the tests can hold the code to them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "akeneo"
INDEX = CORPUS / "index.json"
DOCS_REPO = "akeneo/pim-api-docs"
SITE = "https://api.akeneo.com"
# HEAD of the docs repository when the corpus was built (2026).
HEAD = "61ef548d3546975527266fdc31ce1b0b1916b14d"
# The available-events reference left the repository in 684c2a4d (since then the site fetches
# it from elsewhere at build time); this is its last version in the repository, 684c2a4d^.
AVAILABLE_EVENTS_COMMIT = "08e0ab98d1eb3efbb0b812b98f78976e7c87a7de"
AVAILABLE_EVENTS = "content/event-platform/available-events.md"
SWAGGER = "content/swagger/akeneo-web-api.json"
EP_PREFIX = "com.akeneo.pim.v1."

# --- what the connector must do with an Event Platform type (issue 13, point 2 and 3) ----------
# resource in the type -> (kind, object in data, id field); written from the issue, not the code.
HANDLED_RESOURCES: dict[str, tuple[str, str]] = {
    "product": ("product", "product"),
    "product-model": ("product_model", "product_model"),
    "category": ("category", "category"),
    "family": ("family", "family"),
    "attribute": ("attribute", "attribute"),
    "attribute-option": ("attribute_option", "attribute_option"),
}
UPSERT_VERBS: dict[str, tuple[str, ...]] = {
    "product": ("created", "updated", "updated.delta", "became-complete", "became-incomplete"),
    "product-model": ("created", "updated", "updated.delta"),
    "category": ("created", "updated"),
    "family": ("created", "updated"),
    "attribute": ("created", "updated"),
    "attribute-option": ("created", "updated"),
}


def page_url(path: str) -> str:
    """The published address of a docs page (Akeneo's build maps folders to site paths)."""
    stem = path.removeprefix("content/").removesuffix(".md")
    folder, _, rest = stem.partition("/")
    site_folder = {"rest-api": "documentation", "events-api": "events-documentation"}
    return f"{SITE}/{site_folder.get(folder, folder)}/{rest}.html"


# --- reading the docs repository ------------------------------------------------------------


class Docs:
    """``git show <commit>:<path>`` on a clone of the docs repository, cached."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._cache: dict[tuple[str, str], str] = {}

    def read(self, path: str, commit: str = HEAD) -> str:
        key = (commit, path)
        if key not in self._cache:
            out = subprocess.run(
                ["git", "-C", str(self.repo), "show", f"{commit}:{path}"],
                check=True,
                capture_output=True,
            )
            self._cache[key] = out.stdout.decode("utf-8")
        return self._cache[key]


@dataclass(frozen=True)
class Fence:
    info: str
    content: str
    headings: tuple[str, ...]  # the heading trail above the block, outermost first


_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def fences(markdown: str) -> list[Fence]:
    """Fenced code blocks of a page, as markdown-it reads them (CommonMark rules)."""
    lines = markdown.split("\n")
    trail: list[tuple[int, str]] = []
    out: list[Fence] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = _OPEN.match(line)
        if opening and not (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3)
            closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not closing.match(lines[j]):
                text = lines[j]
                strip = 0
                while strip < indent and strip < len(text) and text[strip] == " ":
                    strip += 1
                body.append(text[strip:])
                j += 1
            content = "".join(f"{b}\n" for b in body)
            out.append(Fence(info.strip(), content, tuple(t for _, t in trail)))
            i = j + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, heading.group(2))]
        i += 1
    return out


def fence_under(markdown: str, heading: str, index: int = 0, info: str = "") -> Fence:
    """The ``index``-th fenced block (of those whose info string starts with ``info``) whose
    heading trail contains ``heading``."""
    found = [f for f in fences(markdown) if heading in f.headings and f.info.startswith(info)]
    if len(found) <= index:
        raise LookupError(f"no {info or 'code'} block #{index} under heading {heading!r}")
    return found[index]


def split_http(content: str) -> tuple[str, dict[str, str], str]:
    """An ``http`` block -> (status line, headers, body); the body kept byte for byte."""
    head, _, body = content.partition("\n\n")
    status, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines if line)
    return status, headers, body


def js_stringify(value: Any) -> str:
    """``JSON.stringify(value, null, 2)``: what Akeneo's reference build prints."""

    def integral(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)  # JavaScript prints 1.0 as 1
        if isinstance(v, dict):
            return {k: integral(x) for k, x in v.items()}
        if isinstance(v, list):
            return [integral(x) for x in v]
        return v

    return json.dumps(integral(value), indent=2, ensure_ascii=False)


def pointer(doc: Any, ref: str) -> Any:
    """Resolve a JSON pointer (RFC 6901)."""
    for raw in ref.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


# --- the corpus -----------------------------------------------------------------------------


@dataclass
class Sample:
    file: str | None  # relative to the corpus directory; None when the sample has no body
    format: str  # event_platform | notification | events_api | rest | management | signature
    url: str
    path: str
    commit: str
    locator: str
    what: str
    expect: dict[str, Any]
    body: str | None = None
    http: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # defaults to the file's path without ".json"

    def entry(self) -> dict[str, Any]:
        data = self.body.encode() if self.body is not None else None
        name = self.name or (self.file or "").removesuffix(".json")
        entry: dict[str, Any] = {
            "name": name,
            "file": self.file,
            "format": self.format,
            "url": self.url,
            "source": {
                "repository": DOCS_REPO,
                "commit": self.commit,
                "path": self.path,
                "locator": self.locator,
            },
            "what": self.what,
            "expect": self.expect,
        }
        if self.http:
            entry["http"] = self.http
        if data is not None:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
            entry["bytes"] = len(data)
        return entry


def _ep_expect(doc: Any) -> dict[str, Any]:
    """What issue 13 says the receiver does with a signed, parseable CloudEvent."""
    event_type: str = doc["type"]
    name = event_type.removeprefix(EP_PREFIX)
    resource, _, verb = name.partition(".")
    meaning = HANDLED_RESOURCES.get(resource)
    if meaning is None or (verb != "deleted" and verb not in UPSERT_VERBS[resource]):
        return {"status": 200, "outcome": "ignored", "type": event_type}
    kind, data_key = meaning
    ref = doc["data"][data_key]
    if resource == "attribute-option":
        key = f"{ref['attribute']['code']}/{ref['code']}"
    else:
        key = ref["uuid"] if resource == "product" else ref["code"]
    return {
        "status": 200,
        "outcome": "stored",
        "type": event_type,
        "kind": kind,
        "action": "delete" if verb == "deleted" else "upsert",
        "key": key,
        "version": _ep_version(doc, ref),
        "event_id": doc["id"],
    }


def _ep_version(doc: Any, ref: Any) -> str:
    """The resource's own update time when the event carries it (``*.updated.delta``: a PHP
    DateTime, ``{"date": "2024-10-14 13:01:21.000000", "timezone": "UTC"}``), else ``time``:
    the architecture's rule, "``updated`` of the resource when present, else the event's
    time". An update happens before its event is sent: an ``updated_at`` later than ``time``
    by more than an hour of clock skew is not trusted (it would outrank every later change);
    Akeneo's two delta samples carry one eight months after their ``time``."""
    updated = ref.get("updated_at")
    if not isinstance(updated, dict):
        return str(doc["time"])
    if updated.get("timezone") != "UTC":
        raise ValueError(f"unexpected updated_at {updated!r}")
    date, _, fraction = str(updated["date"]).partition(".")
    own = f"{date.replace(' ', 'T')}.{fraction}+00:00"
    sent = datetime.fromisoformat(str(doc["time"]))
    if datetime.fromisoformat(own) > sent + timedelta(hours=1):
        return str(doc["time"])
    return own


def _section_heading(fence: Fence) -> str | None:
    """The ``## com.akeneo.pim.v1.<type>`` heading above a block, if any."""
    return next((h for h in fence.headings if h.startswith(EP_PREFIX)), None)


def available_events(docs: Docs) -> Iterator[Sample]:
    markdown = docs.read(AVAILABLE_EVENTS, AVAILABLE_EVENTS_COMMIT)
    seen: set[str] = set()
    for fence in fences(markdown):
        heading = _section_heading(fence)
        if heading is None or not fence.info.startswith("json"):
            continue
        event_type = heading.replace("\u200b", "")  # one heading holds a zero-width space
        if event_type in seen:  # one example per type
            continue
        seen.add(event_type)
        doc = json.loads(fence.content)
        quirks = []
        if doc["type"] != event_type:
            quirks.append(f"its type is {doc['type']!r}")
        if not doc.get("dataschema", "").endswith(f"/{doc['type']}.schema.json"):
            quirks.append("its dataschema names another type (copied from another sample)")
        expect = _ep_expect(doc)
        if expect.get("version") == doc["time"] and "updated.delta" in event_type:
            quirks.append("its updated_at is months after its time (the version is the time)")
        what = f"Akeneo's example of a {event_type} delivery"
        if quirks:
            what += "; as published, " + " and ".join(quirks)
        yield Sample(
            file=f"event-platform/{event_type}.json",
            format="event_platform",
            url=page_url(AVAILABLE_EVENTS),
            path=AVAILABLE_EVENTS,
            commit=AVAILABLE_EVENTS_COMMIT,
            locator=f"first json code block under '## {heading}'",
            what=what,
            expect=expect,
            body=fence.content,
        )


def event_platform_pages(docs: Docs) -> Iterator[Sample]:
    invalid = (
        "not valid JSON as published (no comma between data.product and data.author): the real "
        "sender never emits it; a body that is not a CloudEvent is answered 400"
    )
    for path, heading, name, what in (
        (
            "content/event-platform/concepts.md",
            "Events Format",
            "concepts-product-deleted",
            "the CloudEvent example of the concepts page (product.deleted, source "
            "'akeneo-event-platform', with the optional product identifier)",
        ),
        (
            "content/event-platform/best-practices.md",
            "Deal with events generated by your own business logic",
            "best-practices-product-updated",
            "the self-authored event example of the best-practices page (product.updated)",
        ),
    ):
        fence = fence_under(docs.read(path), heading)
        yield Sample(
            file=f"event-platform/{name}.json",
            format="event_platform",
            url=page_url(path),
            path=path,
            commit=HEAD,
            locator=f"first code block under heading '{heading}'",
            what=f"{what}; {invalid}",
            expect={"status": 400, "outcome": "rejected", "reason": "invalid_json"},
            body=fence.content,
        )
    path = "content/event-platform/notification-webhooks.md"
    fence = fence_under(docs.read(path), "Payload")
    doc = json.loads(fence.content)
    yield Sample(
        file="event-platform/notification-suspended-system.json",
        format="notification",
        url=page_url(path),
        path=path,
        commit=HEAD,
        locator="first code block under '## Payload'",
        what="a notification webhook: the subscription was suspended by the platform",
        expect={
            "status": 200,
            "outcome": "stored",
            "notification_type": doc["notification_type"],
            "subscription_id": doc["subscription_id"],
            "reason": doc["reason"],
        },
        body=fence.content,
    )
    for path, heading, name, what in (
        (
            "content/event-platform/notification-webhooks.md",
            "Configuration",
            "subscriber-with-notification-webhook",
            "management API: a subscriber created with the webhook notification channel",
        ),
        (
            "content/event-platform/getting-started.md",
            "2. Create a Subscriber",
            "subscriber-created-answer",
            "management API: the answer to POST /subscribers",
        ),
        (
            "content/event-platform/concepts.md",
            "HTTPS subscription",
            "https-subscription",
            "management API: the body creating an https subscription",
        ),
    ):
        fence = fence_under(docs.read(path), heading, info="json")
        yield Sample(
            file=f"event-platform/management/{name}.json",
            format="management",
            url=page_url(path),
            path=path,
            commit=HEAD,
            locator=f"first json code block under heading '{heading}'",
            what=what,
            expect={"shape_of": "the simulator's management API (issue 13, point 7)"},
            body=fence.content,
        )
    path = "content/event-platform/logs.md"
    fence = fence_under(docs.read(path), "1. **Action Logs**", info="json")
    yield Sample(
        file="event-platform/management/action-log-suspended.json",
        format="management",
        url=page_url(path),
        path=path,
        commit=HEAD,
        locator="first json code block under heading '1. **Action Logs**'",
        what="management API: an action log of a user's suspend call; its response is the "
        "suspended subscription as the API answers it",
        expect={"shape_of": "the answer to POST .../subscriptions/{id}/suspend (response)"},
        body=fence.content,
    )


def _legacy_expect(doc: Any) -> dict[str, Any]:
    """Akeneo's rules: key = uuid (else identifier) or code; version = resource.updated or
    event_datetime; ``*.removed`` is a removal."""
    events = []
    for event in doc["events"]:
        action: str = event["action"]
        resource = event["data"]["resource"]
        model = action.startswith("product_model.")
        events.append(
            {
                "kind": "product_model" if model else "product",
                "action": "delete" if action.endswith(".removed") else "upsert",
                "key": resource["code"]
                if model
                else (resource.get("uuid") or resource["identifier"]),
                "version": resource.get("updated") or event["event_datetime"],
                "event_id": event["event_id"],
            }
        )
    return {"status": 200, "outcome": "stored", "events": events}


def events_api(docs: Docs) -> Iterator[Sample]:
    versions = {
        "serenity": "SaaS (Serenity)",
        "7.0": "PIM 7.0",
        "5.0": "PIM 5.0 (6.0's page is identical): products without uuid",
    }
    for version, label in versions.items():
        for page, headings in (
            ("products", ("Product created", "Product updated", "Product removed")),
            (
                "product-models",
                ("Product model created", "Product model updated", "Product model removed"),
            ),
        ):
            if version == "5.0" and page == "product-models":
                continue  # the same bytes as 7.0's
            path = f"content/events-reference/events-reference-{version}/{page}.md"
            markdown = docs.read(path)
            for heading in headings:
                fence = fence_under(markdown, heading)
                slug = heading.lower().replace(" ", "-")
                yield Sample(
                    file=f"events-api/{version}/{slug}.json",
                    format="events_api",
                    url=page_url(path),
                    path=path,
                    commit=HEAD,
                    locator=f"first code block under '## {heading}'",
                    what=f"legacy Events API request body, {heading.lower()}, {label}",
                    expect=_legacy_expect(json.loads(fence.content)),
                    body=fence.content,
                )
    path = "content/events-api/security.md"
    fence = fences(docs.read(path))[0]
    values = dict(re.findall(r'\$(\w+) =\s*"([^"]*)";', fence.content))
    body = re.search(r"\$requestBody = '([^']*)';", fence.content)
    assert body is not None
    yield Sample(
        file="events-api/security-signature-example.php",
        format="signature",
        url=page_url(path),
        path=path,
        commit=HEAD,
        locator="the php code block",
        what=(
            "the PHP signature check of the Events API security page; its printed signature "
            "does not match its (elided) body, so only the message construction is testable"
        ),
        expect={
            "secret": values["secret"],
            "timestamp": values["timestamp"],
            "request_body": body.group(1),
            "published_signature": values["originalSignature"],
            "message": "<timestamp> + '.' + <raw body>",
        },
        body=fence.content,
    )


def rest_markdown(docs: Docs) -> Iterator[Sample]:
    blocks = (
        ("content/rest-api/authentication.md", "Token generation", 0, "token", "OAuth token"),
        (
            "content/rest-api/authentication.md",
            "Refresh an expired token",
            0,
            "token-refreshed",
            "OAuth answer to a refresh_token grant",
        ),
        ("content/rest-api/responses.md", "400 error", 0, "error-400", "malformed JSON sent"),
        ("content/rest-api/responses.md", "401 error", 0, "error-401", "no or bad token"),
        ("content/rest-api/responses.md", "404 error", 0, "error-404", "unknown resource"),
        ("content/rest-api/responses.md", "422 error", 0, "error-422-validation", "invalid data"),
        ("content/rest-api/responses.md", "422 error", 1, "error-422-property", "unknown field"),
        ("content/rest-api/responses.md", "422 error", 2, "error-422-unknown", "unknown data"),
        ("content/rest-api/responses.md", "429 error", 0, "error-429", "throttled"),
        (
            "content/rest-api/pagination.md",
            "The `limit` parameter",
            0,
            "error-422-limit",
            "limit above 100",
        ),
        (
            "content/rest-api/pagination.md",
            "The `Search-after` method",
            0,
            "products-uuid-search-after-page",
            "a products-uuid search_after page; its items are elided as '...' (not JSON)",
        ),
    )
    for path, heading, index, name, what in blocks:
        fence = fence_under(docs.read(path), heading, index, info="http")
        status_line, headers, body = split_http(fence.content)
        status = int(status_line.split()[1])
        expect: dict[str, Any] = {"status": status}
        if body.strip():
            try:
                doc = json.loads(body)
            except ValueError:
                expect["json"] = False
            else:
                expect["json"] = True
                if "message" in doc:
                    expect["message"] = doc["message"]
        if "Retry-After" in headers:
            expect["retry_after"] = float(headers["Retry-After"])
        yield Sample(
            file=f"rest/{name}.json" if body.strip() else None,
            format="rest",
            url=page_url(path),
            path=path,
            commit=HEAD,
            locator=f"http code block #{index} under '{heading}' (the body after the blank line)",
            what=f"REST API: {what}",
            expect=expect,
            body=body if body.strip() else None,
            http={"status_line": status_line, "headers": headers},
            name=f"rest/{name}",
        )


def rest_reference(docs: Docs) -> Iterator[Sample]:
    swagger = json.loads(docs.read(SWAGGER))
    examples = (
        (
            "/api/rest/v1/products-uuid",
            "get",
            "x-examples-per-version/x-example",
            "products-uuid-page",
            "a products-uuid list page (page pagination, with_* options on); Akeneo's build "
            "keys this example without an x-version, so the page may not print it",
        ),
        (
            "/api/rest/v1/product-models",
            "get",
            "examples",
            "product-models-search-after-page",
            "a product-models search_after page",
        ),
        ("/api/rest/v1/products-uuid/{uuid}", "get", "schema/example", "product", "a product"),
        (
            "/api/rest/v1/product-models/{code}",
            "get",
            "schema/example",
            "product-model",
            "a product model",
        ),
        ("/api/rest/v1/categories/{code}", "get", "schema/example", "category", "a category"),
        ("/api/rest/v1/families/{code}", "get", "schema/example", "family", "a family"),
        ("/api/rest/v1/attributes/{code}", "get", "schema/example", "attribute", "an attribute"),
        (
            "/api/rest/v1/attributes/{attribute_code}/options/{code}",
            "get",
            "schema/example",
            "attribute-option",
            "an attribute option",
        ),
        ("/api/oauth/v1/token", "post", "examples", "token-reference", "an OAuth token answer"),
        ("/api/rest/v1/categories", "get", "examples", "categories-page", "a categories page"),
        ("/api/rest/v1/families", "get", "examples", "families-page", "a families page"),
        ("/api/rest/v1/attributes", "get", "examples", "attributes-page", "an attributes page"),
        (
            "/api/rest/v1/attributes/{attribute_code}/options",
            "get",
            "examples",
            "attribute-options-page",
            "an attribute options page",
        ),
    )
    for api_path, verb, where, name, what in examples:
        escaped = api_path.replace("~", "~0").replace("/", "~1")
        ref = f"/paths/{escaped}/{verb}/responses/200/{where}"
        operation = swagger["paths"][api_path][verb]
        value = pointer(swagger, ref)
        yield Sample(
            file=f"rest/{name}.json",
            format="rest",
            url=f"{SITE}/api-reference-paas-70.html#{operation['operationId']}",
            path=SWAGGER,
            commit=HEAD,
            locator=f"JSON pointer {ref}, rendered as JSON.stringify(value, null, 2)",
            what=f"REST API reference: {what} ({verb.upper()} {api_path})",
            expect={"status": 200, "json": True},
            body=js_stringify(value),
        )


def build(docs: Docs) -> list[Sample]:
    return [
        *available_events(docs),
        *event_platform_pages(docs),
        *events_api(docs),
        *rest_markdown(docs),
        *rest_reference(docs),
    ]


def index_of(samples: list[Sample]) -> str:
    doc = {
        "about": (
            "Request and answer bodies copied verbatim from Akeneo's published documentation; "
            "re-check with `python -m tests.samples.extract --docs-repo <pim-api-docs clone>`."
        ),
        "samples": [s.entry() for s in samples],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs-repo", type=Path, required=True, help="clone of pim-api-docs")
    parser.add_argument("--write", action="store_true", help="rewrite the corpus")
    args = parser.parse_args(argv)
    samples = build(Docs(args.docs_repo))
    files = {s.file: s.body.encode() for s in samples if s.file and s.body is not None}
    index = index_of(samples).encode()
    if args.write:
        for name, data in files.items():
            target = CORPUS / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        INDEX.write_bytes(index)
        print(f"wrote {len(files)} bodies and {INDEX.relative_to(CORPUS.parent)}")
        return 0
    drift = [
        name
        for name, data in files.items()
        if not (CORPUS / name).is_file() or (CORPUS / name).read_bytes() != data
    ]
    if not INDEX.is_file() or INDEX.read_bytes() != index:
        drift.append("index.json")
    for name in drift:
        print(f"differs from the docs: {name}", file=sys.stderr)
    print(f"{len(files)} bodies checked, {len(drift)} differ")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
