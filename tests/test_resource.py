"""Service identity: resource attributes, OTEL_RESOURCE_ATTRIBUTES and per-process ids."""

from __future__ import annotations

import json
import os
import uuid
import warnings

import pytest

import unified_obs as obs
from unified_obs.config import Settings
from unified_obs.resource import build_resource, instance_id


def test_service_fields_become_resource_attributes() -> None:
    """service.name, service.version and deployment.environment.name come from settings."""
    settings = Settings.from_env(
        {}, service_name="checkout", service_version="1.4.2", environment="prod"
    )
    attributes = build_resource(settings).attributes
    assert attributes["service.name"] == "checkout"
    assert attributes["service.version"] == "1.4.2"
    assert attributes["deployment.environment.name"] == "prod"
    assert attributes["process.pid"] == os.getpid()
    assert attributes["telemetry.sdk.language"] == "python"
    assert isinstance(attributes["host.name"], str)


def test_resource_attributes_from_environment_merge_under_explicit_fields() -> None:
    """OTEL_RESOURCE_ATTRIBUTES adds attributes; explicit settings win on conflicts."""
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": "team=core,service.version=0.9,note=a%20b%2Cc",
        "OTEL_SERVICE_NAME": "svc",
    }
    attributes = build_resource(Settings.from_env(environ)).attributes
    assert attributes["team"] == "core"
    assert attributes["note"] == "a b,c"
    assert attributes["service.version"] == "0.9"
    explicit = build_resource(Settings.from_env(environ, service_version="2.0")).attributes
    assert explicit["service.version"] == "2.0"


def test_service_name_in_resource_attributes_is_enough() -> None:
    """service.name given only through OTEL_RESOURCE_ATTRIBUTES is used without a warning."""
    settings = Settings.from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"})
    assert build_resource(settings).attributes["service.name"] == "from-attrs"


def test_otel_service_name_beats_resource_attributes() -> None:
    """OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (OTel spec)."""
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=attrs", "OTEL_SERVICE_NAME": "env"}
    assert build_resource(Settings.from_env(environ)).attributes["service.name"] == "env"


def test_missing_service_name_warns_and_is_visible() -> None:
    """No service name anywhere: a RuntimeWarning and an unknown_service:<program> name."""
    with pytest.warns(RuntimeWarning, match="no service name"):
        tel = obs.setup(environ={})
    name = tel.resource.attributes["service.name"]
    assert isinstance(name, str)
    assert name.startswith("unknown_service:")
    assert name != "unknown_service:"


def test_instance_id_is_a_uuid_shared_by_every_signal() -> None:
    """service.instance.id is a UUID, the same for the handle and the tracer provider."""
    tel = obs.setup(environ={}, service_name="svc")
    assert tel.resource.attributes["service.instance.id"] == instance_id()
    uuid.UUID(instance_id())
    assert tel.tracer_provider is not None
    assert tel.tracer_provider.resource.attributes["service.instance.id"] == instance_id()


def _fork_and_report(tel: obs.Telemetry) -> dict[str, object]:
    """Fork; the child reports its instance ids and pid through a pipe and exits at once."""
    assert tel.tracer_provider is not None
    assert tel.log_pipeline.provider is not None
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            report = {
                "pid": os.getpid(),
                "instance_id": instance_id(),
                "provider": tel.tracer_provider.resource.attributes["service.instance.id"],
                "logs": tel.log_pipeline.provider.resource.attributes["service.instance.id"],
                "process.pid": tel.resource.attributes["process.pid"],
            }
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, object] = json.loads(data)
    return result


def test_forked_child_gets_its_own_instance_id() -> None:
    """A forked child has a new service.instance.id, also on providers built before the fork."""
    tel = obs.setup(environ={}, service_name="svc", logs_exporter="console")
    parent_id = instance_id()
    child = _fork_and_report(tel)
    assert child["instance_id"] != parent_id
    assert child["provider"] == child["logs"] == child["instance_id"]
    assert child["process.pid"] == child["pid"]
    assert instance_id() == parent_id
