"""Prometheus multiprocess mode, managed: directory, value class, dead workers, scrapes.

``prometheus_client`` picks its value class when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``.  :func:`enable` switches it at ``setup()`` instead (the
caller then rebuilds the instruments that already exist), so the directory can come
from a setting.  Every process writes ``<type>_<pid>.db`` files.  Before each scrape,
under a file lock, the files of processes that no longer exist are folded away:
counter, histogram and summary values are added into ``<type>_archive.db`` (totals stay
exact and the file count stays bounded however often workers are recycled); gauges in
the ``live*`` and ``all`` modes are deleted, so no stale per-worker series remain.  No
gunicorn ``child_exit`` hook is needed.  A view (:func:`add_view`) may show the summed
families differently (the process metrics show ``prometheus_client``'s families).
"""

from __future__ import annotations

import contextlib
import gc
import glob
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import CollectorRegistry

__all__ = ["active_dir", "add_view", "cleanup", "disable", "enable", "remove_view", "render"]

_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_SUMMED: Final = ("counter", "histogram", "summary")
_HEADER: Final = 8  # bytes: the used-size field every file starts with
_pid = [os.getpid()]
_state: dict[str, Any] = {}
View = Callable[[Iterable[Metric]], Iterable[Metric]]
_views: list[View] = []


def add_view(view: View) -> None:
    """Have ``view`` rewrite the summed families before a scrape shows them."""
    if view not in _views:
        _views.append(view)


def remove_view(view: View) -> None:
    """Show the families as summed again (undoes :func:`add_view`)."""
    with contextlib.suppress(ValueError):
        _views.remove(view)


def _after_fork() -> None:
    _pid[0] = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _process_id() -> int:
    """The pid, cached (``os.getpid`` is a system call on every metric update otherwise)."""
    return _pid[0]


def is_multiprocess() -> bool:
    """Whether ``prometheus_client`` values live in mmap files now."""
    return values.ValueClass is not values.MutexValue  # the single-process value class


def active_dir() -> str | None:
    """The multiprocess directory in use, or ``None`` in single-process mode."""
    if not is_multiprocess():
        return None
    return _state.get("dir") or os.environ.get(_ENV)


def enable(path: str) -> bool:
    """Use multiprocess mode in ``path``; True when the value class was switched now."""
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    switching = not is_multiprocess()
    if switching:
        _state.setdefault("previous_env", os.environ.get(_ENV))
        _state.setdefault("previous_class", values.ValueClass)
    os.environ[_ENV] = path
    _state["dir"] = path
    with _locked(path):
        cleanup(path, also_dead={_pid[0]} if switching else set())
    if switching:
        values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)  # type: ignore[no-untyped-call]
    return switching


def disable() -> None:
    """Back to the value class and environment found before :func:`enable` (tests)."""
    if "previous_class" in _state:
        values.ValueClass = _state["previous_class"]
    previous = _state.get("previous_env")
    if "previous_env" in _state:
        if previous is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = previous
    _state.clear()
    _close_value_files()


def _close_value_files() -> None:
    """Close the files of the values made in multiprocess mode (tests switch it off):
    ``prometheus_client`` 0.26+ closes them itself; before, they close when collected,
    which happens here rather than as a ResourceWarning in whatever runs next."""
    close = getattr(values, "close_all_multiprocess_files", None)
    if close is not None:
        close()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # zombie = exited
    except OSError:
        return True


def _pid_of(filename: str) -> int | None:
    tail = os.path.basename(filename).rsplit("_", 1)[-1].removesuffix(".db")
    return int(tail) if tail.isdigit() else None


def _written(filename: str) -> bool:
    """Whether ``filename`` has its header yet: a process creates its file empty and sizes
    it a moment later, and a scrape in between must neither fail nor fold it."""
    try:
        return os.path.getsize(filename) >= _HEADER
    except OSError:  # gone meanwhile
        return False


class _Collector(MultiProcessCollector):
    """``prometheus_client``'s collector over the files that have their header."""

    def __init__(self, registry: Any, path: str) -> None:
        self.directory = path  # before registering: the registry collects once
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Any:
        files = glob.glob(os.path.join(self.directory, "*.db"))
        families: Iterable[Metric] = self.merge([f for f in files if _written(f)], accumulate=True)  # type: ignore[no-untyped-call]
        for view in _views:
            families = view(families)
        return families


def cleanup(path: str, also_dead: set[int] | frozenset[int] = frozenset()) -> int:
    """Fold away the files of dead processes (see the module docstring); returns how many."""
    folded = 0
    for filename in glob.glob(os.path.join(path, "*.db")):
        pid = _pid_of(filename)
        if pid is None or (pid not in also_dead and (pid == _pid[0] or _alive(pid))):
            continue
        kind = os.path.basename(filename).split("_", 1)[0]
        if not _written(filename):  # died before writing anything
            os.remove(filename)
        elif kind in _SUMMED:
            _fold(path, kind, filename)
        elif kind == "gauge" and _gauge_mode(filename).startswith(("live", "all")):
            os.remove(filename)
        else:
            continue
        folded += 1
    return folded


def _gauge_mode(filename: str) -> str:
    parts = os.path.basename(filename).split("_")
    return parts[1] if len(parts) > 2 else ""


def _fold(path: str, kind: str, filename: str) -> None:
    """Add a dead process's values into the archive file of its type, then delete it."""
    archive: Any = MmapedDict(os.path.join(path, f"{kind}_archive.db"))  # type: ignore[no-untyped-call]
    entries: Any = MmapedDict.read_all_values_from_file(filename)  # type: ignore[no-untyped-call]
    try:
        for key, value, _timestamp, _pos in entries:
            current, _ = archive.read_value(key)
            archive.write_value(key, current + value, 0.0)
    finally:
        archive.close()
    os.remove(filename)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no multiprocess servers to guard
        yield
        return
    with open(os.path.join(path, ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def render(path: str, encoder: Callable[[CollectorRegistry], bytes]) -> bytes:
    """Encode the sum over every process's files, after folding away dead ones."""
    registry = CollectorRegistry()
    _Collector(registry, path=path)
    with _locked(path):
        cleanup(path)
        return encoder(registry)
