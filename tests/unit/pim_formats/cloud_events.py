"""CloudEvents of every type in Akeneo's shape, for the format and receiver tests.

Envelope and ``data`` shapes from https://api.akeneo.com/event-platform/available-events.html:
``source`` "pim", ``subject`` the subscription, ``dataschema``
``https://event.prd.sdk.akeneo.cloud/spec/<type>.schema.json``, ``data`` holding the ids under
a key named for the resource, plus ``author``.
"""

from __future__ import annotations

import uuid
from typing import Any

from akeneo_connector.event_types import HANDLED, attribute_option_key
from akeneo_connector.normalized import ResourceKind

SUBSCRIPTION = "019256aa-7f77-7f58-bc8c-770f7e369c5b"
AUTHOR = {"identifier": "b238e9f7-fcec-45bd-9431-d43cd624b244", "type": "user"}

# Verbatim from https://api.akeneo.com/event-platform/available-events.html (Akeneo's
# "Example of payload" of each type), kept byte for byte as published.
PRODUCT_CREATED_SAMPLE = b"""{
  "specversion": "1.0",
  "id": "018e32f9-dfe4-760e-a273-5da1c089dfdb",
  "type": "com.akeneo.pim.v1.product.created",
  "source": "pim",
  "subject": "019256aa-7f77-7f58-bc8c-770f7e369c5b",
  "time": "2024-02-22T17:31:00Z",
  "datacontenttype": "application/json",
  "dataschema": "https://event.prd.sdk.akeneo.cloud/spec/com.akeneo.pim.v1.product.created.schema.json",
  "data": {
    "product": {
      "uuid": "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf"
    },
    "author": {
      "identifier": "b238e9f7-fcec-45bd-9431-d43cd624b244",
      "type": "user"
    }
  }
}"""
BECAME_COMPLETE_SAMPLE = b"""{
  "specversion": "1.0",
  "id": "018e32f9-dfe4-760e-a273-5da1c089dfdb",
  "type": "com.akeneo.pim.v1.product.became-complete",
  "source": "pim",
  "subject": "srnt-whatever",
  "time": "2024-02-22T17:31:00Z",
  "datacontenttype": "application/json",
  "dataschema": "https://event.prd.sdk.akeneo.cloud/spec/com.akeneo.pim.v1.product.became-complete.schema.json",
  "data": {
    "product": {
      "uuid": "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf",
      "complete_on": [
        {
          "locale": "en_US",
          "scope": "ecommerce"
        },
        {
          "locale": "fr_FR",
          "scope": "mobile"
        }
      ]
    }
  }
}"""
CATEGORY_DELETED_SAMPLE = b"""{
  "specversion": "1.0",
  "id": "018e32f9-dfe4-760e-a273-5da1c089dfdb",
  "type": "com.akeneo.pim.v1.category.deleted",
  "source": "pim",
  "subject": "019256aa-7f77-7f58-bc8c-770f7e369c5b",
  "time": "2024-02-22T17:31:00Z",
  "datacontenttype": "application/json",
  "dataschema": "https://event.prd.sdk.akeneo.cloud/spec/com.akeneo.pim.v1.category.deleted.schema.json",
  "data": {
    "category": {
      "code": "category-1"
    },
    "author": {
      "identifier": "the-app-client-id",
      "type": "api"
    }
  }
}"""
ATTRIBUTE_OPTION_CREATED_SAMPLE = b"""{
  "specversion": "1.0",
  "id": "6e523497-8231-4892-8f9f-895378b4d045",
  "type": "com.akeneo.pim.v1.attribute-option.created",
  "source": "pim",
  "subject": "019256aa-7f77-7f58-bc8c-770f7e369c5b",
  "time": "2024-06-13T10:17:00Z",
  "datacontenttype": "application/json",
  "dataschema": "https://event.prd.sdk.akeneo.cloud/spec/com.akeneo.pim.v1.reference-entity-record.created.schema.json",
  "data": {
    "attribute_option": {
      "code": "an_attribute_option_code",
      "attribute": {
        "code": "an_attribute_code"
      }
    },
    "author": {
      "identifier": "5_xxxk00ufn688cc0gok0wwwxxxccc0g84cwwgkg4s00ow4oxxx",
      "type": "api"
    }
  }
}"""
APP_DELETED_SAMPLE = b"""{
  "specversion": "1.0",
  "id": "018e32f9-dfe4-760e-a273-5da1c089dfdb",
  "type": "com.akeneo.pim.v1.app.deleted",
  "source": "pim",
  "subject": "019256aa-7f77-7f58-bc8c-770f7e369c5b",
  "time": "2024-02-22T17:31:00Z",
  "datacontenttype": "application/json",
  "dataschema": "https://event.prd.sdk.akeneo.cloud/spec/com.akeneo.pim.v1.app.deleted.schema.json",
  "data": {
    "app": {
      "client_id": "test_client_id"
    },
    "author": {
      "identifier": "b238e9f7-fcec-45bd-9431-d43cd624b244",
      "type": "user"
    }
  }
}"""


def envelope(
    type_: str,
    data: Any,
    *,
    event_id: str | None = None,
    time: str = "2026-11-27T10:00:01Z",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "type": type_,
        "source": "pim",
        "subject": SUBSCRIPTION,
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": f"https://event.prd.sdk.akeneo.cloud/spec/{type_}.schema.json",
        "data": data,
    }


def resource_ref(kind: ResourceKind, code: str) -> tuple[dict[str, Any], str]:
    """(the object ``data`` holds for ``kind``, the guard key it names)."""
    if kind is ResourceKind.PRODUCT:
        return {"uuid": code}, code
    if kind is ResourceKind.ATTRIBUTE_OPTION:
        ref = {"code": code, "attribute": {"code": "color"}}
        return ref, attribute_option_key("color", code)
    return {"code": code}, code


def handled_event(type_: str, code: str, **kwargs: Any) -> tuple[dict[str, Any], str]:
    """(a CloudEvent of the handled ``type_`` naming ``code``, the key it normalizes to)."""
    handled = HANDLED[type_]
    ref, key = resource_ref(handled.kind, code)
    return envelope(type_, {handled.data_key: ref, "author": dict(AUTHOR)}, **kwargs), key


def ignored_event(type_: str, **kwargs: Any) -> dict[str, Any]:
    """A CloudEvent of a type the connector does not handle, with plausible ``data``."""
    resource = type_.removeprefix("com.akeneo.pim.v1.").split(".")[0].replace("-", "_")
    return envelope(type_, {resource: {"code": "x-1"}, "author": dict(AUTHOR)}, **kwargs)
