"""docs/configuration.md: its settings tables (the components' and the operator's) are
generated, fresh, and name every setting users had before they were generated (none may
disappear)."""

from __future__ import annotations

import re
from pathlib import Path

from akeneo_connector import settings_docs
from akeneo_connector.settings_contract import COMPONENTS, contract_fields
from akeneo_operator import settings_docs as operator_docs
from akeneo_operator.settings import OPTIONS, STANDALONE

# Every env variable docs/configuration.md named when its tables were still typed by hand.
DOCUMENTED_BEFORE = frozenset(
    """
    AKENEO_ACK_BUDGET AKENEO_ACK_WAIT AKENEO_ADMIN_PORT AKENEO_CONNECTION
    AKENEO_DEFAULT_RESOURCES AKENEO_ENSURE_STREAM AKENEO_EVENTS_API_SECRET_FILE
    AKENEO_EVENT_LOOP AKENEO_EVENT_PLATFORM_ACK_BUDGET
    AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE AKENEO_EVENT_PLATFORM_SECRETS_FILE
    AKENEO_GAP_SPOOL_FILE AKENEO_HOST AKENEO_IMAGE AKENEO_LOG_LEVEL AKENEO_MAX_BODY_BYTES
    AKENEO_MAX_DELIVER AKENEO_MAX_PENDING AKENEO_NATS_CREDS_CHECK_INTERVAL
    AKENEO_NATS_CREDS_FILE AKENEO_NATS_PASSWORD_FILE AKENEO_NATS_URL AKENEO_NATS_USER
    AKENEO_OPERATOR_ALLOWED_EGRESS_CIDRS AKENEO_OPERATOR_ALLOWED_ISSUERS
    AKENEO_OPERATOR_ALLOW_PRIVATE_PIM AKENEO_OPERATOR_ALLOW_PRIVATE_POSTGRES
    AKENEO_OPERATOR_ALLOW_PRIVATE_WEBHOOKS AKENEO_OPERATOR_CERT_RENEW_BEFORE
    AKENEO_OPERATOR_CERT_VALIDITY AKENEO_OPERATOR_DEFAULT_TLS
    AKENEO_OPERATOR_EGRESS_DNS_NAMESPACE AKENEO_OPERATOR_EGRESS_NATS_NAMESPACE
    AKENEO_OPERATOR_HOST_PATTERN AKENEO_OPERATOR_IMAGE_PULL_POLICY
    AKENEO_OPERATOR_INGRESS_CLASS AKENEO_OPERATOR_INGRESS_NAMESPACE
    AKENEO_OPERATOR_KEDA_NATS_ACCOUNT AKENEO_OPERATOR_KEDA_NATS_MONITORING
    AKENEO_OPERATOR_MAINTENANCE_INTERVAL AKENEO_OPERATOR_METRICS_NAMESPACE
    AKENEO_OPERATOR_NATS_ACCOUNT AKENEO_OPERATOR_NATS_CREDS_RENEW_BEFORE
    AKENEO_OPERATOR_NATS_CREDS_VALIDITY AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE
    AKENEO_OPERATOR_POD_NATS_SECRET AKENEO_OPERATOR_POD_NATS_SECRET_KEY
    AKENEO_OPERATOR_POD_NATS_URL AKENEO_OPERATOR_POD_NATS_USER AKENEO_OPERATOR_PRIORITY
    AKENEO_OPERATOR_RECEIVER_RESOURCES AKENEO_OPERATOR_STANDALONE
    AKENEO_OPERATOR_STREAM_QUOTAS AKENEO_OPERATOR_WATCH_CLIENT_TIMEOUT
    AKENEO_OPERATOR_WATCH_SERVER_TIMEOUT AKENEO_OWN_CLIENT_ID AKENEO_PEERING_NAME
    AKENEO_PIM_ALLOW_PRIVATE AKENEO_PIM_CA_FILE AKENEO_PIM_CREDENTIALS_DIR AKENEO_PIM_URL
    AKENEO_PORT AKENEO_POSTGRES_ALLOW_PRIVATE AKENEO_POSTGRES_DSN_FILE AKENEO_POSTGRES_TABLE
    AKENEO_RECONCILE_LOCK_TTL AKENEO_RECONCILE_LOCK_WAIT AKENEO_RECONCILE_RESOURCES
    AKENEO_REPLICA AKENEO_REST_BUDGET AKENEO_SAFETY_MARGIN AKENEO_SINK AKENEO_SQLITE_PATH
    AKENEO_SUBJECT_PREFIX AKENEO_TIMESTAMP_TOLERANCE AKENEO_TLS_CERT_FILE AKENEO_TLS_KEY_FILE
    AKENEO_WATCH_NAMESPACES AKENEO_WEBHOOK_ALLOW_PRIVATE AKENEO_WEBHOOK_SIGNATURE
    AKENEO_WEBHOOK_SIGNING_SECRET_FILE AKENEO_WEBHOOK_URL KUBECONFIG
    """.split()  # noqa: SIM905 (one name per word reads best)
)


def _documented() -> set[str]:
    return set(re.findall(r"\b(?:AKENEO_[A-Z_]*[A-Z]|KUBECONFIG)\b", settings_docs.DOC.read_text()))


def test_the_settings_tables_are_fresh() -> None:
    text = settings_docs.DOC.read_text()
    wanted = settings_docs.generate(text, {"operator": operator_docs.operator_table})
    assert wanted == text, "stale: run `python -m akeneo_operator.settings_docs --write`"


def test_no_documented_setting_disappeared() -> None:
    assert DOCUMENTED_BEFORE - _documented() == set()


def test_every_component_setting_is_documented() -> None:
    envs = {meta.env for cls in COMPONENTS.values() for _, meta in contract_fields(cls)}
    assert envs - _documented() == set()


def test_every_operator_flag_has_its_row() -> None:
    text = settings_docs.DOC.read_text()
    block = text[text.index("BEGIN GENERATED: operator") : text.index("END GENERATED: operator")]
    for option in (*OPTIONS, STANDALONE):
        assert f"| `{option.flag}` | `{option.env}` |" in block, option.flag


def test_an_unknown_generated_section_is_refused() -> None:
    text = "<!-- BEGIN GENERATED: nonsense -->\n<!-- END GENERATED: nonsense -->\n"
    try:
        settings_docs.generate(text, {"operator": operator_docs.operator_table})
    except ValueError as exc:
        assert "nonsense" in str(exc)
    else:
        raise AssertionError("an unknown section was accepted")


def test_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(settings_docs.DOC.read_text().replace("`AKENEO_SINK`", "`AKENEO_SYNC`"))
    doc.write_text(doc.read_text().replace("`--host-pattern`", "`--host-patern`"))
    assert operator_docs.main(["--check", "--path", str(doc)]) == 1
    assert operator_docs.main(["--write", "--path", str(doc)]) == 0
    assert operator_docs.main(["--check", "--path", str(doc)]) == 0
    assert "`--host-pattern`" in doc.read_text()
