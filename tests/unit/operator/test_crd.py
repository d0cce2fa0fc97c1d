"""The generated CRD: fresh on disk, structural, and agreeing with the pydantic spec models."""

from __future__ import annotations

import copy
import re
from typing import Any, cast

import pytest
import yaml
from pydantic import ValidationError

from akeneo_connector.spec import GROUP, KIND, PLURAL, VERSION, AkeneoConnectionSpec
from akeneo_operator import crd

Schema = dict[str, Any]

MINIMAL: dict[str, Any] = {
    "pim": {"url": "https://acme.cloud.akeneo.com"},
    "receiver": {"signatureSecret": "acme-events"},
}


def _spec_schema() -> Schema:
    version = crd.build_crd()["spec"]["versions"][0]
    schema: Schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _walk(node: Schema, path: str = "spec") -> list[tuple[str, Schema]]:
    out = [(path, node)]
    for key, child in node.get("properties", {}).items():
        out.extend(_walk(child, f"{path}.{key}"))
    if "items" in node:
        out.extend(_walk(node["items"], f"{path}[]"))
    return out


def apply_defaults(schema: Schema, value: Any) -> Any:
    """What the API server's structural defaulting does: parent defaults first, then nested."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, prop in schema.get("properties", {}).items():
            if key not in value and "default" in prop:
                value[key] = copy.deepcopy(prop["default"])
            if key in value:
                value[key] = apply_defaults(prop, value[key])
    elif schema.get("type") == "array" and isinstance(value, list):
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def schema_errors(schema: Schema, value: Any, path: str = "spec") -> list[str]:
    """The OpenAPI subset the generated schema uses (CEL rules are checked on the real server)."""
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    expected = kinds[schema["type"]]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return [f"{path}: not {schema['type']}"]
    value = cast(Any, value)
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: pattern")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: minLength")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: maxLength")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: maximum")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        errors += [f"{path}.{k}: unknown" for k in value if k not in props]
        for key, child in value.items():
            if key in props:
                errors += schema_errors(props[key], child, f"{path}.{key}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            errors += schema_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


# -- freshness --------------------------------------------------------------------------------


def test_checked_in_crd_files_are_fresh() -> None:
    stale = crd.stale_paths()
    assert stale == [], f"stale CRD {stale}: run `python -m akeneo_operator.crd --write`"


def test_check_reports_a_stale_copy(tmp_path: Any) -> None:
    fresh, stale, missing = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    crd.write((fresh, stale))
    stale.write_text(stale.read_text().replace("akc", "akx"))
    assert crd.stale_paths((fresh, stale, missing)) == [stale, missing]


def test_checked_in_yaml_is_the_built_manifest() -> None:
    loaded = yaml.safe_load(crd.CRD_PATHS[0].read_text())
    assert loaded == crd.build_crd()


# -- shape ----------------------------------------------------------------------------------


def test_names_and_version() -> None:
    manifest = crd.build_crd()
    assert manifest["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    spec = manifest["spec"]
    assert spec["names"]["kind"] == KIND
    assert "akc" in spec["names"]["shortNames"]
    assert spec["names"]["categories"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["storage"] and version["served"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Endpoint"] == ".status.endpoint"
    assert columns["EventPlatform"] == ".status.endpoints.eventPlatform"
    assert columns["Notifications"] == ".status.endpoints.notifications"
    assert columns["Applied"] == ".status.counters.applied"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_schema_is_structural() -> None:
    root = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(root)
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title:", "additionalProperties"):
        assert forbidden not in text
    for path, node in _walk(root, "root"):
        open_ok = node.get("x-kubernetes-preserve-unknown-fields") is True
        assert "type" in node or open_ok, f"{path} has no type"
        if node.get("type") == "object" and path not in ("root.metadata",):
            assert "properties" in node or open_ok, f"{path}: object without properties"


def test_preserve_unknown_fields_only_for_kopf_storage() -> None:
    root = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    opened = [p for p, n in _walk(root, "root") if n.get("x-kubernetes-preserve-unknown-fields")]
    assert opened == ["root.status.kopf"]


def test_status_conditions_are_a_map_keyed_by_type() -> None:
    status = crd.status_schema()
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    fields = set(conditions["items"]["properties"])
    assert fields == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    counters = set(status["properties"]["counters"]["properties"])
    assert counters == {"applied", "skippedOutdated", "deadLettered"}


def test_every_model_field_is_in_the_schema_with_its_description() -> None:
    schema = _spec_schema()
    assert set(schema["properties"]) == {
        f.alias for f in AkeneoConnectionSpec.model_fields.values()
    }
    pim_url = schema["properties"]["pim"]["properties"]["url"]
    assert pim_url["description"].startswith("Base URL of the PIM")


def test_only_non_null_defaults_are_nullable() -> None:
    nullable = [p for p, n in _walk(_spec_schema()) if n.get("nullable")]
    assert nullable == ["spec.reconciliation.fullScanSchedule"]


# -- agreement with the models ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        MINIMAL,
        with_(MINIMAL, "worker.sink", {"webhook": {"url": "https://app.example.com/hook"}}),
        with_(MINIMAL, "worker.sink", {"postgres": {"dsnSecret": "db"}}),
        with_(MINIMAL, "tls", {"mode": "certManager", "issuerRef": {"name": "le"}}),
        with_(MINIMAL, "stream", {"maxAge": "24h"}),
        with_(MINIMAL, "reconciliation", {"fullScanSchedule": None, "resources": ["products"]}),
        with_(MINIMAL, "receiver.allowedSourceRanges", ["10.0.0.0/8"]),
    ],
)
def test_crd_defaults_equal_model_defaults(spec: dict[str, Any]) -> None:
    schema = _spec_schema()
    defaulted = apply_defaults(schema, copy.deepcopy(spec))
    model = AkeneoConnectionSpec.model_validate(spec)
    expected = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if spec.get("reconciliation", {}).get("fullScanSchedule", "") is None:
        expected["reconciliation"]["fullScanSchedule"] = None
    assert defaulted == expected
    assert schema_errors(schema, defaulted) == []
    assert AkeneoConnectionSpec.model_validate(defaulted) == model


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("pim.url", "ftp://acme"),
        ("receiver.replicas", 0),
        ("receiver.replicas", 51),
        ("receiver.signatureSecret", "Not_A_Name"),
        ("receiver.host", "no_dots"),
        ("receiver.timestampTolerance", "5 minutes"),
        ("receiver.maxBodyBytes", 10),
        ("receiver.allowedSourceRanges", ["10.0.0.0"]),
        ("tls.mode", "letsEncrypt"),
        ("tls.issuerRef", {"kind": "Vault", "name": "x"}),
        ("stream.replicas", 6),
        ("worker.maxDeliver", 0),
        ("worker.sink", {"postgres": {"dsnSecret": "db", "table": "Bad-Table"}}),
        ("reconciliation.schedule", "every minute"),
        ("reconciliation.resources", ["orders"]),
        ("receiver.unknownField", 1),
    ],
)
def test_schema_and_model_both_refuse(path: str, value: Any) -> None:
    spec = with_(MINIMAL, path, value)
    with pytest.raises(ValidationError):
        AkeneoConnectionSpec.model_validate(spec)
    assert schema_errors(_spec_schema(), apply_defaults(_spec_schema(), spec)) != []


def test_cross_field_rules_are_cel_validations() -> None:
    schema = _spec_schema()
    sink = schema["properties"]["worker"]["properties"]["sink"]
    tls = schema["properties"]["tls"]
    assert "exactly one" in sink["x-kubernetes-validations"][0]["message"]
    messages = [r["message"] for r in tls["x-kubernetes-validations"]]
    assert any("issuerRef" in m for m in messages) and any("secretName" in m for m in messages)
    (stream_rule,) = schema["properties"]["stream"]["x-kubernetes-validations"]
    assert "duration(self.duplicateWindow) <= duration(self.maxAge)" in stream_rule["rule"]


def test_main_check_and_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main(["--check"]) == 0
    assert crd.main([]) == 0
    assert "kind: CustomResourceDefinition" in capsys.readouterr().out


def test_every_cel_rule_names_a_spec_model() -> None:
    models = set(crd._models(AkeneoConnectionSpec))
    assert set(crd.CEL_RULES) <= models


def test_nullable_default_survives_model_round_trip() -> None:
    spec = with_(MINIMAL, "reconciliation", {"fullScanSchedule": None})
    model = AkeneoConnectionSpec.model_validate(spec)
    assert model.reconciliation.full_scan_schedule is None


def test_every_model_validator_has_a_cel_rule() -> None:
    """A cross-field check added to the models must reach the API server too (or be listed
    here as one only the operator can make)."""
    operator_only: set[str] = set()
    with_validators = {
        name
        for name, model in crd._models(AkeneoConnectionSpec).items()
        if model.__pydantic_decorators__.model_validators
    }
    assert with_validators - operator_only == set(crd.CEL_RULES)
