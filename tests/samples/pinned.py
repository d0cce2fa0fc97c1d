"""Signatures and ``change_id`` values of the samples, computed outside the project's code.

Computed once when the tests were written, in the corpus directory, with OpenSSL and jq only:

    openssl dgst -sha256 -hmac "$EP_SECRET" < event-platform/<file>
    openssl dgst -sha256 -hmac "$NOTIFICATION_SECRET" < event-platform/notification-*.json
    (printf '%s.' "$LEGACY_TIMESTAMP"; cat events-api/<file>) \\
        | openssl dgst -sha256 -hmac "$LEGACY_SECRET"

``change_id`` (the webhook sink's idempotency key; rule: ``akeneo_connector.changes.Change``'s
docstring and the README's webhook contract): the first 32 hex digits of the SHA-256 of
``connection, kind, key, operation, version, digest`` joined by newlines, where version is
UTC with microseconds (``2020-10-20T09:13:59.000000Z``) and digest the SHA-256 hex of the
resource's canonical JSON (sorted keys, no spaces, UTF-8; empty for a removal):

    D=$(jq -cjS '.events[0].data.resource' events-api/serenity/product-created.json \\
        | openssl dgst -sha256 | awk '{print $2}')
    printf '%s\\n%s\\n%s\\n%s\\n%s\\n%s' samples/acme product \\
        1fd20ad8-ef95-49d7-a581-fb9f8ac0c5ad upsert 2020-10-20T09:13:59.000000Z "$D" \\
        | openssl dgst -sha256 | cut -c1-32      # (the hex after "= ")
"""

from __future__ import annotations

# The receiver tests' secrets (tests/integration/receiver/conftest.py; the notification
# secret has 16 to 256 characters, as the Event Platform requires).
EP_SECRET = "ep-primary-8f14e45f"
LEGACY_SECRET = "legacy-secret-d41d8cd9"
NOTIFICATION_SECRET = "ep-notifications-45c48cce2e2d7fbd"
LEGACY_TIMESTAMP = 1602565368  # the timestamp of Akeneo's own signature example
EP_PREFIX = "com.akeneo.pim.v1."


def _table(text: str) -> dict[str, str]:
    return dict(line.split() for line in text.strip().splitlines())


# hex HMAC-SHA256(EP_SECRET, body) by file under event-platform/ (".json" and the
# "com.akeneo.pim.v1." prefix left out)
EVENT_PLATFORM = _table(
    """
best-practices-product-updated 6369145a8792f1735790dffaac20bb905a9b0ae76e6e567c14bc98247739ee03
app.deleted c73978b51783bd9500c6f3d947f1de4e6f64ebb36c240789a6897d4dcb6eb8f5
asset.created e1d3518cebd44d631b623b0aab63c95e4e13de8987a1df8a3f9015aca3cc1259
asset.deleted 3450a717215c0634c0573edcbd383a4a0182d11eb398d8e4a39ee2a5c6392869
asset.updated c79b126513e1055939101bc54bd86c83ff7c6a3f50909dfa35f7b91f5d856a58
attribute-group.created 93e965bdc38b8e127093a55a56796a17e8eed23ae3903c5ff4a5cc3d1380535b
attribute-group.deleted 5e84b426ad0d6f5ad16cebe1531b5b57dd0dceada222a7c9b556d3a7c56904d4
attribute-group.updated b97e9d0daca284c17648a526d20d6cbbddf8281ddb91eeae866d2a7029fafc09
attribute-option.created 9644df257505973e2ecdea36639611d2cbc1dc9e9890919ee64499929371e996
attribute-option.deleted 8299344ea76230bd9f1905e2aef152463de09d2617ef980e72cdbd586f8f3b69
attribute-option.updated 3e4fea92798cf92b4615f45aa70ae51fa679d797f1e4c77a8c516f819387fcd4
attribute.created 67ecc3d970cb046c47e781d0aab42bd43eda340fb084471eb20e96ccc50a405a
attribute.deleted 7ff6bba3454bed85fa4efcd553009424ac39a2a9119d3b370e89d8de573bcff2
attribute.updated fbb0544b721d94ac91d00ec3136f167d7f9db86cd9a0bdd1b6a2d742d1c46a68
category.created a5fd30699efe4039a71f5052861a90082be60a4386a0cf0defb66f11d415a93e
category.deleted 7d15b0d0e2a1ad00e510d80e852aa85823e81d02c1ad52e74b83796d33b5a48e
category.updated c1d8a312fe0a84e76b338e5b00688dfca54e9b036ce369eda5f9896f54e0e8d0
connection.deleted 611d41f451eea8c022a7f5f49c6fb3f15f5a190a7cd427d98e9d1dd245b11cf2
family.created 1bd5cf75deb7491d343b572b861f8524d516e1ed211e41c8a188b4e45b654f5f
family.deleted 4f5588d1b848e1a3243fb523deb3241107727ea29e1526e3a72ba08f150f442c
family.updated 481d5b0d803a6d48ae02ffe2b62d72a1d87423ddd4684158523080dbe6477877
job.export.status-changed 0fb08c2c5c0afd2270329b0b14a5903027a0f58bb330ef7e72d12099933aad9a
job.import.status-changed 3c899de5f6400971f5cc782a34ae3157bcd2875fc7be924e262e58b4cb7c4fdb
job.mass-edit.status-changed 56a09eb2a80f764740f6148c25334f4f0cb15e889e0fbdc8138da5a2b700fe92
product-model.created bb1ffe79c6820f72a0958e4274b236a1aa4ba7856b4dd9aa996861464f52ded9
product-model.deleted 2a02173d02c4b8742d07858f04270040098542ff50160330ce3a71b3dae568bb
product-model.updated.delta dbc0bd520266e0f81401bed23a8889688fddb9f20a604061573619da63d5331d
product-model.updated 22cdd24eb8563765f86a0dd4191ec9256e385d92dc18252c74fb95f6d102cdf8
product.became-complete ac618cbbc19f76f904986463d9ca8fbe2e2d1051874e90e847e4897cca7b8874
product.became-incomplete ffbfe371e726a265aaae57c6a4f568ee6baabad7326f56511f234290e5f765f9
product.created 4af9d6dd3b430801d96d1040f38916908e4430425f1848f41b0608737d58bf84
product.deleted 791a1875fdb620016ee0563358d512779abdaecc2af013a95f08e814c5059c2a
product.updated.delta 316288b276d69508c074685af053de2c66e0f922f0c09882a72a74a7b24968cc
product.updated cd42d5c2bc721cdc3750b45b8221692b94b449a4ada5ccb35ccf20905daf0252
reference-entity-record.created f786b1c423dae63240ea734b1b4e6cb0a7b3b6b9f4cde3f3e2e31accf1efb6e6
reference-entity-record.deleted 2abd90fa684428c0620e8a1efaabe03d73ce850b64bd50c692a81fc9e8b2e560
reference-entity-record.updated 9a5fc3512e72a0d22cdf9ee0761f6a4235a79ead37bcd5499bd8f1a6ab10359e
workflow.task.created bee826ebb1c7a4c531d6d026050f84d518be3ce2b634982f47086950032cf52c
concepts-product-deleted f7bf92a82d0bd17624ca905ba671d29e8533d54ce61c7160444d0c2b088f0f5e
"""
)

# hex HMAC-SHA256(NOTIFICATION_SECRET, body) of event-platform/notification-suspended-system.json
NOTIFICATION = "14dac29298a054722babc656d933658ff8479de8ea4744befd49fce297cad877"

# hex HMAC-SHA256(LEGACY_SECRET, f"{LEGACY_TIMESTAMP}." + body) by file under events-api/
# (".json" left out)
EVENTS_API = _table(
    """
5.0/product-created 0a6268c8c6fb82d9e302ac67809284c6f7f113a88a733c88c1da8b8e158cf7b6
5.0/product-removed 26eaf9aca6ea4d0d6c17abd29afb57a97dd603728b00f502f184fe619b499214
5.0/product-updated d19258ad5d626f64fc710fd32a4ab4b2b9c0b44fc6d1e7b2d0bd613eebe19245
7.0/product-created 0f001cd0d95ae8325f0a0b0fdb04f5959c9fe991f4392c69588d711ade922440
7.0/product-model-created e6cc72892f33745dd43eff78e41df68039176ec0b8d2ad674ce2ffcf8ae33960
7.0/product-model-removed 14f9a9ade597073a1e32281330b04619d0a6b2d41b1b8d2636f8438038f46a84
7.0/product-model-updated 35ed5cf246c2fbf8079758db4cdb61502c38d774bb32e18d06a90c1832a07bdc
7.0/product-removed 301d8182f2b42d3cdfc4873598d10190b50c778f731bc1c50c0825411bb15112
7.0/product-updated 2440ea42e324b43cc4989956ee9f9ea4293c3e67a640990d29f2ea65fe4ee773
serenity/product-created befa83086c49513dec63702a5faa13ccb1d6a53d2f9c9e0c09dbe00596f9992b
serenity/product-model-created 2ab2dd10808ff27c0e6cf6292e58f02e0c4424c199aade8d7c1441c4083d1001
serenity/product-model-removed 14f9a9ade597073a1e32281330b04619d0a6b2d41b1b8d2636f8438038f46a84
serenity/product-model-updated 683bd4f94242d0a98479880af4938ab5f884d202cd343d162a5ee73f815a6b99
serenity/product-removed 301d8182f2b42d3cdfc4873598d10190b50c778f731bc1c50c0825411bb15112
serenity/product-updated 2aaad4335b1ce34482526809f522ba421c430a240f41c1f75f3a4a25126f5a9e
"""
)

# Akeneo's PHP example (events-api/security.md) signs "1602565368." + an elided body; what
# OpenSSL computes for its literal inputs (the page prints d4582dd1..., made from a full body).
DOC_PHP_EXAMPLE = "bc8a3f22ef1568222a52a185e36e856b5f97c8350379751d43c357018eb0633e"

# change_id of the serenity product-created / product-removed samples applied by connection
# "samples/acme" (see above for the one-liners).
CONNECTION = "samples/acme"
CHANGE_ID_PRODUCT_CREATED = "53af659032fcf052ab992e7291575c8c"
CHANGE_ID_PRODUCT_REMOVED = "6356be013eb6a4debcf2a293e6ae1e64"


def event_platform_signature(file: str) -> str:
    """The pinned signature of ``event-platform/<...>.json`` (a path under the corpus)."""
    stem = file.removeprefix("event-platform/").removesuffix(".json").removeprefix(EP_PREFIX)
    return EVENT_PLATFORM[stem]


def events_api_signature(file: str) -> str:
    """The pinned signature of ``events-api/<...>.json`` at ``LEGACY_TIMESTAMP``."""
    return EVENTS_API[file.removeprefix("events-api/").removesuffix(".json")]
