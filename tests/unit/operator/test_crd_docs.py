"""The CRD as a documented API: every field described, the status schema and condition list
from the status model, and docs/api.md generated from both and never stale."""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from akeneo_connector.spec import StreamSpec
from akeneo_operator import apidoc, crd, status
from akeneo_operator.status import Cond, Observed, render_status
from akeneo_operator.status_model import BLOCKERS, CONDITIONS, ConnectionStatus
from akeneo_pim import event_platform_api, notifications

Schema = dict[str, Any]
OPERATOR = Path(status.__file__).parent
# Reasons the code names that never reach a condition: a lookup default, and a certificate
# problem of the connection's own CA (reissued, or ReconcileFailed).
NEVER_SHOWN = {"NotRequested", "InvalidCA"}


def _root() -> Schema:
    root: Schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def _walk(node: Schema, path: str) -> list[tuple[str, Schema]]:
    """Every property under ``node`` (and ``node``), those of array items included."""
    out = [(path, node)]
    for key, child in node.get("properties", {}).items():
        out.extend(_walk(child, f"{path}.{key}"))
    for key, child in node.get("items", {}).get("properties", {}).items():
        out.extend(_walk(child, f"{path}[].{key}"))
    return out


# -- descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_has_a_description(part: str) -> None:
    """What `kubectl explain akc.<path>` prints: a field without one prints nothing."""
    fields = _walk(_root()["properties"][part], part)
    assert len(fields) > 30
    missing = [path for path, node in fields if not str(node.get("description", "")).strip()]
    assert missing == [], f"add a description to the model field of: {missing}"


def test_descriptions_are_the_models() -> None:
    stream = _root()["properties"]["spec"]["properties"]["stream"]["properties"]
    assert stream["maxAge"]["description"] == StreamSpec.model_fields["max_age"].description
    since = _root()["properties"]["status"]["properties"]["catchUp"]["properties"]["since"]
    assert since == {
        "type": "string",
        "format": "date-time",
        "description": "The Job reads what was updated after this time",
    }


# -- status from the model ------------------------------------------------------------------


def test_status_schema_is_the_models() -> None:
    schema = crd.status_schema()
    assert set(schema["properties"]) == {
        f.alias for f in ConnectionStatus.model_fields.values() if f.alias
    }
    conditions = schema["properties"]["conditions"]
    assert conditions["items"]["required"] == ["type", "status"]
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    counter = schema["properties"]["counters"]["properties"]["applied"]
    assert {k: counter[k] for k in ("type", "format", "minimum")} == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
    }


def test_condition_list_comes_from_the_status_constants() -> None:
    assert crd.CONDITION_TYPES is status.CONDITION_TYPES
    assert [c.type for c in CONDITIONS] == list(status.CONDITION_TYPES)
    described = crd.status_schema()["properties"]["conditions"]["description"]
    assert all(kind in described for kind in status.CONDITION_TYPES)


def test_what_the_operator_writes_fits_the_model() -> None:
    """``render_status`` with every part filled, as the reconciler and repairs fill it."""
    obs = Observed(
        generation=3,
        conditions={
            **dict.fromkeys(status.COMPONENTS, Cond.ok("PodsAvailable", "2/2")),
            status.CATCH_UP: Cond.fail("Running", "Job x reads updated > ..."),
        },
        endpoint="https://acme.example.com/events",
        endpoints={
            "events": "https://acme.example.com/events",
            "eventPlatform": "https://acme.example.com/event-platform",
            "notifications": "https://acme.example.com/event-platform/notifications",
        },
        last_reconcile_time="2026-01-01T00:00:00Z",
        last_reconcile_result="Succeeded",
        counters={"applied": 10, "skippedOutdated": 1, "deadLettered": 0},
        sync={"syncNow": "sha256:ab", "fullScanNow": "1", "initialJob": "acme-initial-sync"},
        catch_up={
            "through": 4,
            "planned": 5,
            "job": "acme-catch-up-5",
            "since": "2026-01-01T00:00:00Z",
            "windows": "2026-01-01T00:05:00Z..2026-01-01T00:10:00Z (subscription)",
            "attempt": 2,
            "failedAt": "2026-01-01T00:20:00Z",
            "receiverDownSince": "2026-01-01T00:30:00Z",
        },
    )
    rendered = render_status(obs, {}, datetime(2026, 1, 1, tzinfo=UTC))
    model = ConnectionStatus.model_validate(rendered)
    assert model.catch_up is not None and model.catch_up.attempt == 2
    assert set(rendered) <= set(crd.status_schema()["properties"])


def test_the_model_refuses_a_field_the_schema_lacks() -> None:
    with pytest.raises(ValueError, match="lastSync"):
        ConnectionStatus.model_validate({"lastSync": "2026-01-01T00:00:00Z"})


def _reasons_in_code() -> dict[str, str]:
    """Every reason the operator passes to a condition, by reason: where it is set."""
    found: dict[str, str] = {}
    for path in sorted(OPERATOR.rglob("*.py")):
        dotted = ".".join(path.relative_to(OPERATOR.parent).with_suffix("").parts)
        module = importlib.import_module(dotted.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            if func in ("Cond.ok", "Cond.fail", "CertProblem"):
                arg = node.args[0] if node.args else None
            elif func == "Cond":
                arg = node.args[1] if len(node.args) > 1 else None
            else:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                reason: Any = arg.value
            elif isinstance(arg, ast.Name | ast.Attribute):
                try:
                    reason = eval(ast.unparse(arg), vars(module))  # a module-level constant
                except (AttributeError, NameError):
                    continue  # a variable: its values are literals found elsewhere
            else:
                continue
            if isinstance(reason, str):
                found.setdefault(reason, f"{dotted}:{node.lineno}")
    for _status, reason, _verb in notifications._CONDITIONS.values():
        found.setdefault(reason, "akeneo_pim/notifications.py")
    # the management API client names its errors; the operator passes them on as reasons
    api = event_platform_api
    for reason in (api.UNAUTHORIZED, api.NOT_FOUND, api.LIMIT_REACHED, api.REJECTED,
                   api.UNAVAILABLE):  # fmt: skip
        found.setdefault(reason, "akeneo_pim/event_platform_api.py")
    return found


def test_every_reason_the_operator_sets_is_documented() -> None:
    in_code = _reasons_in_code()
    assert {"InvalidSpec", "StreamProvisioned", "HostConflict", "Revoked"} <= set(in_code)
    documented = {r.name for c in CONDITIONS for r in c.reasons}
    undocumented = {r: where for r, where in in_code.items() if r not in documented}
    for reason in NEVER_SHOWN:
        undocumented.pop(reason, None)
    assert undocumented == {}, "document these in status_model.CONDITIONS"
    stale = documented - set(in_code) - {status.UNKNOWN.reason}
    assert stale == set(), "reasons documented but never set"


def test_blockers_are_ready_reasons() -> None:
    (ready,) = [c for c in CONDITIONS if c.type == status.READY]
    assert set(BLOCKERS) <= set(ready.reasons)


# -- docs/api.md ----------------------------------------------------------------------------


def test_api_reference_is_fresh() -> None:
    assert crd.stale_outputs() == [], "run `python -m akeneo_operator.crd --write`"


def test_api_reference_lists_every_field_reason_and_rule() -> None:
    text = crd.API_DOC.read_text()
    root = _root()
    for part in ("spec", "status"):
        for path, _node in _walk(root["properties"][part], part):
            if path != part:
                assert f"| `{path}` |" in text, path
    for cond in CONDITIONS:
        assert f"### {cond.type}\n" in text
        for reason in cond.reasons:
            assert f"| `{reason.name}` | {reason.status} |" in text
    assert "stream.duplicateWindow must not exceed stream.maxAge" in text
    # a pipe in a pattern would split the table row
    schedule = next(line for line in text.splitlines() if "`spec.reconciliation.schedule`" in line)
    assert schedule.count(" | ") == 4


def test_check_fails_on_a_stale_reference_and_write_repairs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = (tmp_path / "crds" / "a.yaml", tmp_path / "chart" / "a.yaml")
    doc = tmp_path / "docs" / "api.md"
    monkeypatch.setattr(crd, "CRD_PATHS", copies)
    monkeypatch.setattr(crd, "API_DOC", doc)
    monkeypatch.setattr(crd, "REPO", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(crd.README.read_text())
    monkeypatch.setattr(crd, "README", readme)
    printed: list[str] = []
    assert crd.main(["--write"], out=printed.append) == 0
    assert crd.main(["--check"], out=printed.append) == 0
    doc.write_text(doc.read_text().replace("maxAge", "maxage"))
    printed.clear()
    assert crd.main(["--check"], out=printed.append) == 1
    assert printed == ["stale: docs/api.md (run: python -m akeneo_operator.crd --write)"]
    assert doc.read_text() != apidoc.render(crd.build_crd())
    readme.write_text(readme.read_text().replace("| `Ready` | `HostConflict` |", "| x |"))
    printed.clear()
    assert crd.main(["--check"], out=printed.append) == 1
    assert "stale: README.md (run: python -m akeneo_operator.crd --write)" in printed
    assert crd.main(["--write"], out=printed.append) == 0
    assert "| `Ready` | `HostConflict` |" in readme.read_text()


def test_every_reason_says_what_to_do_and_no_remedy_is_orphaned() -> None:
    """README's troubleshooting table is generated from these: a new reason without a remedy,
    or a remedy for a reason that no longer exists, fails here before it reaches users."""
    from akeneo_operator.status_model import CONDITIONS, PENDING, REMEDIES

    pairs = {(c.type, r.name) for c in CONDITIONS for r in c.reasons if r is not PENDING}
    assert pairs - set(REMEDIES) == set()
    assert set(REMEDIES) - pairs == set()


def test_the_readme_troubleshooting_table_is_generated_and_fresh() -> None:
    from akeneo_operator import apidoc, crd

    readme = crd.README.read_text()
    assert apidoc.with_troubleshooting(readme) == readme, (
        "run python -m akeneo_operator.crd --write"
    )
    table = apidoc.troubleshooting()
    assert "| `EventSubscriptionActive` | `SuspendedBySystem` |" in table
    assert "| `ReceiverReady`, `WorkerReady` | `NoPodsAvailable` |" in table
