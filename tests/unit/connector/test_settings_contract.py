"""The settings contract: one reading rule (flag over env over default), one boolean parser,
env written by the operator and local mode reads back as the same settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

import pytest

from akeneo_connector.names import ConnectionNames
from akeneo_connector.settings_contract import (
    RECONCILE_RESOURCES,
    SINKS,
    WEBHOOK_SIGNATURES,
    CommonSettings,
    ReceiverSettings,
    ReconcileJobSettings,
    Seconds,
    SettingsError,
    WorkerSettings,
    add_arguments,
    contract_fields,
    parse_bool,
    resolve,
    written,
)
from akeneo_connector.spec import ReconcileResource, SinkSpec, WebhookSignature
from akeneo_pim.structure import ATTRIBUTE_OPTIONS, STRUCTURE
from akeneo_resync.reconcile import KINDS

NAMES = ConnectionNames("tenant-a", "acme")


def read(cls: type[Any], argv: list[str], env: dict[str, str]) -> Any:
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return resolve(cls, parser.parse_args(argv), env)


@pytest.mark.parametrize(
    ("text", "value"),
    [("on", True), ("TRUE", True), ("1", True), ("yes", True), (" off ", False), ("", False),
     ("0", False), ("no", False), ("False", False)],
)  # fmt: skip
def test_one_boolean_parser_takes_on_and_off(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    env = {"AKENEO_CONNECTION": "a/b", "AKENEO_ENSURE_STREAM": text}
    assert read(ReceiverSettings, [], env).ensure_stream is value


def test_a_boolean_typo_is_refused_with_the_variable_name() -> None:
    env = {"AKENEO_CONNECTION": "a/b", "AKENEO_WEBHOOK_ALLOW_PRIVATE": "ture"}
    with pytest.raises(SettingsError, match="AKENEO_WEBHOOK_ALLOW_PRIVATE: not a boolean"):
        read(WorkerSettings, [], env)


def test_flag_wins_over_env_which_wins_over_the_default() -> None:
    env = {"AKENEO_CONNECTION": "a/b", "AKENEO_MAX_DELIVER": "3", "AKENEO_ACK_WAIT": "2m"}
    worker = read(WorkerSettings, ["--max-deliver", "5"], env)
    assert (worker.max_deliver, worker.ack_wait, worker.port) == (5, 120.0, 8080)
    assert worker.names == ConnectionNames("a", "b")
    empty = read(WorkerSettings, [], {**env, "AKENEO_MAX_DELIVER": ""})  # empty: unset
    assert empty.max_deliver == 10


def test_the_sink_is_checked_once_on_reading_whatever_the_source() -> None:
    env = {"AKENEO_CONNECTION": "a/b", "AKENEO_SINK": "mysql"}
    with pytest.raises(SettingsError, match="AKENEO_SINK: 'mysql' is not one of webhook"):
        read(WorkerSettings, [], env)
    with pytest.raises(SystemExit):  # argparse: usage error
        read(WorkerSettings, ["--sink", "mysql"], {"AKENEO_CONNECTION": "a/b"})
    with pytest.raises(SettingsError, match="--webhook-url is required"):
        read(WorkerSettings, ["--sink", "webhook"], {"AKENEO_CONNECTION": "a/b"}).check()
    with pytest.raises(SettingsError, match="AKENEO_SINK"):
        written(WorkerSettings, names=NAMES, sink="mysql")


def test_connection_is_required() -> None:
    with pytest.raises(SettingsError, match=r"--connection \(or AKENEO_CONNECTION\) is required"):
        read(CommonSettings, [], {})


def test_written_env_reads_back_as_the_same_settings() -> None:
    values: dict[str, Any] = {
        "names": NAMES,
        "nats_url": "nats://a:4222,nats://b:4222",
        "nats_creds_file": Path("/etc/akeneo/nats/nats.creds"),
        "sink": "postgres",
        "postgres_dsn_file": Path("/etc/akeneo/sink/dsn"),
        "postgres_allow_private": True,
        "ack_wait": Seconds("1m30s"),
        "pim_url": "https://pim.example.com",
    }
    settings, env = written(WorkerSettings, **values)
    assert [name for name, _ in env][:3] == ["AKENEO_CONNECTION", "AKENEO_NATS_URL",
                                             "AKENEO_NATS_CREDS_FILE"]  # fmt: skip
    assert dict(env)["AKENEO_ACK_WAIT"] == "1m30s"  # as the spec wrote it
    assert dict(env)["AKENEO_POSTGRES_ALLOW_PRIVATE"] == "true"
    assert read(WorkerSettings, [], dict(env)) == settings
    job, env = written(ReconcileJobSettings, names=NAMES, resources=("products", "families"))
    assert dict(env)["AKENEO_RECONCILE_RESOURCES"] == "products,families"
    assert read(ReconcileJobSettings, [], dict(env)).resources == job.resources


def test_unknown_reconcile_resources_are_refused() -> None:
    env = {"AKENEO_CONNECTION": "a/b", "AKENEO_RECONCILE_RESOURCES": "products,channels"}
    with pytest.raises(SettingsError, match="unknown resources channels"):
        read(ReconcileJobSettings, [], env)


def test_choices_match_the_spec_and_the_components() -> None:
    assert set(RECONCILE_RESOURCES) == set(get_args(ReconcileResource))
    assert set(RECONCILE_RESOURCES) == {*KINDS, *STRUCTURE, ATTRIBUTE_OPTIONS}
    assert set(WEBHOOK_SIGNATURES) == {s.value for s in WebhookSignature}
    assert set(SINKS) == set(SinkSpec.model_fields)  # one sink field per kind


def test_every_setting_has_a_unique_flag_and_env_and_a_description() -> None:
    for cls in (ReceiverSettings, WorkerSettings, ReconcileJobSettings):
        fields = list(contract_fields(cls))
        flags = [meta.flag_for(name) for name, meta in fields]
        envs = [meta.env for _, meta in fields]
        assert len(set(flags)) == len(flags) and len(set(envs)) == len(envs)
        assert all(meta.help for _, meta in fields)
        assert all(env.startswith("AKENEO_") for env in envs)
