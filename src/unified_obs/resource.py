"""Service identity: the OpenTelemetry ``Resource`` every signal carries.

``service.instance.id`` is unique per process: a forked child gets a fresh one,
written into the same ``Resource`` object so that providers built before the
fork report the child's identity.  The id is the one the SDK's own
``ServiceInstanceIdResourceDetector`` hands out (cached per pid), because the SDK's
providers merge that detector's value over their resource after a fork: using the
same source keeps every signal, and ``instance_id()``, on one id.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from typing import Final

from opentelemetry.sdk import resources as sdk_resources
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

from ._compat.opentelemetry import replace_resource_attributes
from .config import Settings

__all__ = ["build_resource", "instance_id"]

_SERVICE_NAME: Final = "service.name"
_INSTANCE_ID: Final = "service.instance.id"
_live_resources: list[Resource] = []


def _detect_instance_id() -> str:
    detector = getattr(sdk_resources, "ServiceInstanceIdResourceDetector", None)
    if detector is not None:  # SDK >= 1.40: the id its providers re-detect after a fork
        return str(detector().detect().attributes[_INSTANCE_ID])
    return str(uuid.uuid4())


_instance_id = (os.getpid(), _detect_instance_id())


def instance_id() -> str:
    """This process's ``service.instance.id`` (regenerated in a forked child)."""
    pid, value = _instance_id
    return value if pid == os.getpid() else _after_fork_in_child()


def build_resource(settings: Settings) -> Resource:
    """The resource for ``settings``: explicit fields win over ``OTEL_RESOURCE_ATTRIBUTES``."""
    attributes: dict[str, AttributeValue] = {**_host_and_process(), **settings.resource_attributes}
    explicit = {
        _SERVICE_NAME: settings.service_name,
        "service.version": settings.service_version,
        "deployment.environment.name": settings.environment,
    }
    attributes.update({k: v for k, v in explicit.items() if v})
    if not attributes.get(_SERVICE_NAME):
        attributes[_SERVICE_NAME] = _fallback_service_name()
    attributes[_INSTANCE_ID] = instance_id()
    resource = Resource(attributes)
    _live_resources.append(resource)
    return resource


def _fallback_service_name() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    name = f"unknown_service:{program or 'python'}"
    warnings.warn(
        f"unified_obs: no service name; using {name!r}. Pass setup(service_name=...) or set "
        "OTEL_SERVICE_NAME.",
        RuntimeWarning,
        stacklevel=4,
    )
    return name


def _host_and_process() -> dict[str, AttributeValue]:
    import platform
    import socket

    from opentelemetry.sdk.version import __version__ as sdk_version

    return {
        "host.name": socket.gethostname(),
        "host.arch": host_arch(platform.machine()),
        "os.type": os_type(sys.platform),
        "process.pid": os.getpid(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.executable.path": sys.executable,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
    }


_ARCHES: Final = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "aarch64_be": "arm64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "x86": "x86",
    "ia64": "ia64",
    "ppc": "ppc32",
    "powerpc": "ppc32",
    "ppc64": "ppc64",
    "ppc64le": "ppc64",
    "s390x": "s390x",
}


def host_arch(machine: str) -> str:
    """``host.arch`` in the convention's words (``x86_64`` -> ``amd64``); another
    machine name is kept, lower-cased (the convention allows values of its own)."""
    machine = machine.lower()
    if machine.startswith("arm") and machine not in _ARCHES:
        return "arm32"  # armv7l, armv6l, ...
    return _ARCHES.get(machine, machine)


_OS_TYPES: Final = (
    ("linux", "linux"),
    ("win", "windows"),
    ("cygwin", "windows"),
    ("darwin", "darwin"),
    ("freebsd", "freebsd"),
    ("netbsd", "netbsd"),
    ("openbsd", "openbsd"),
    ("dragonfly", "dragonflybsd"),
    ("hp-ux", "hpux"),
    ("aix", "aix"),
    ("sunos", "solaris"),
    ("zos", "zos"),
)


def os_type(platform_name: str) -> str:
    """``os.type`` in the convention's words (``win32`` -> ``windows``), from
    ``sys.platform``; another platform is kept as it is."""
    for prefix, name in _OS_TYPES:
        if platform_name.startswith(prefix):
            return name
    return platform_name


def forget_resources() -> None:
    """Stop tracking resources built so far (``testing.reset``)."""
    _live_resources.clear()


def _after_fork_in_child() -> str:
    """Give the child its own identity, in place, on every resource already built."""
    global _instance_id
    _instance_id = (os.getpid(), _detect_instance_id())
    for resource in _live_resources:
        updated = Resource(
            {**resource.attributes, _INSTANCE_ID: _instance_id[1], "process.pid": os.getpid()}
        )
        replace_resource_attributes(resource, updated)
    return _instance_id[1]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
