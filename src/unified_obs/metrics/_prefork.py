"""Zero-config multiprocess metrics: find a pre-fork server's master and the directory its
workers share.

Under gunicorn (any worker class, with or without ``--preload``), ``uvicorn --workers N`` and
hypercorn (whose workers are always spawned) every worker counts for itself, and a scrape
answered by one worker must add up the files of all of them
(:mod:`~unified_obs.metrics._multiprocess`).  :func:`shared_dir` finds the server's master
process and names a directory after it, ``unified_obs-metrics-<pid>-<start>``
under the temporary directory (the master's start time too, so a reused pid never meets an
earlier run's files); every worker arrives at the same name without talking to the others.
Directories of masters that no longer run are removed on the way, and a master that ran
``setup()`` itself (``--preload``) removes its own at exit.  A process that looks like a
worker of a server we do not know (started by ``multiprocessing``) gets one warning that names
the setting instead.

The decision (:func:`detect`) is a pure function of :class:`ProcessFacts`; :func:`facts`
reads them from this process and ``/proc``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["Detection", "ProcessFacts", "detect", "facts", "shared_dir", "stale_dirs"]

PREFIX: Final = "unified_obs-metrics-"
_NAME: Final = re.compile(re.escape(PREFIX) + r"(\d+)-(\d+)$")
_SPAWNED_WORKERS: Final = {
    "uvicorn._subprocess": "uvicorn",
    "hypercorn.asyncio.run": "hypercorn",
    "hypercorn.trio.run": "hypercorn",
}
"""Modules a server's spawned worker has imported (its target function), by server."""
UNSURE: Final = (
    "unified_obs: this process was started by another Python process, which may be a "
    "multi-worker server unified_obs does not recognise; if several workers serve one "
    "/metrics, set PROMETHEUS_MULTIPROC_DIR (or setup(metrics_multiprocess_dir=...)) to a "
    "directory they share, or each scrape shows one worker's numbers"
)


@dataclass(frozen=True)
class ProcessFacts:
    """What :func:`detect` looks at; :func:`facts` reads them from the live process."""

    pid: int
    ppid: int
    environ: Mapping[str, str]
    modules: frozenset[str]
    spawned: bool  # started by multiprocessing (uvicorn's and hypercorn's workers are)
    cmdline: Callable[[int], bytes]  # b"" when unknown
    start_time: Callable[[int], str]  # "" when the process does not exist


class Detection(NamedTuple):
    """The pre-fork server found (``""``: none), its master's pid, and whether to warn."""

    server: str
    master: int | None
    unsure: bool = False


def detect(found: ProcessFacts) -> Detection:
    """Which pre-fork server this process belongs to and which process is its master."""
    if found.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):  # set by its master
        return Detection("gunicorn", _gunicorn_master(found))
    if found.spawned:
        for module, server in _SPAWNED_WORKERS.items():
            if module in found.modules:
                return Detection(server, found.ppid)
        return Detection("", None, unsure=True)
    return Detection("", None)


def _gunicorn_master(found: ProcessFacts) -> int:
    """A gunicorn worker is a fork of its master: same command line (or a "worker" title
    when setproctitle is installed).  Otherwise this is the master (``--preload``)."""
    own = found.cmdline(found.pid)
    if own.startswith(b"gunicorn: worker") or (own and own == found.cmdline(found.ppid)):
        return found.ppid
    return found.pid


def facts() -> ProcessFacts:
    """This process's facts."""
    return ProcessFacts(
        pid=os.getpid(),
        ppid=os.getppid(),
        environ=os.environ,
        modules=frozenset(sys.modules),
        spawned=multiprocessing.parent_process() is not None,
        cmdline=_cmdline,
        start_time=_start_time,
    )


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot); ``""`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def stale_dirs(base: str, start_time: Callable[[int], str]) -> list[str]:
    """Our directories under ``base`` whose master no longer runs."""
    try:
        names = os.listdir(base)
    except OSError:
        return []
    stale = []
    for name in names:
        match = _NAME.match(name)
        if match and start_time(int(match.group(1))) != match.group(2):
            stale.append(os.path.join(base, name))
    return stale


def shared_dir(found: ProcessFacts | None = None, base: str | None = None) -> str | None:
    """The directory this process's pre-fork server shares, made if needed; ``None`` when
    there is no such server, when a directory is already configured, or when it cannot be
    made safely (then a warning says so)."""
    found = found or facts()
    if "PROMETHEUS_MULTIPROC_DIR" in found.environ:
        return None  # explicit: prometheus_client or setup() uses it
    detection = detect(found)
    if detection.unsure:
        warnings.warn(UNSURE, RuntimeWarning, stacklevel=4)
    if detection.master is None:
        return None
    started = found.start_time(detection.master)
    if not started:
        warnings.warn(UNSURE, RuntimeWarning, stacklevel=4)
        return None
    base = base or tempfile.gettempdir()
    for path in stale_dirs(base, found.start_time):
        shutil.rmtree(path, ignore_errors=True)
    path = os.path.join(base, f"{PREFIX}{detection.master}-{started}")
    if not _private_dir(path):
        return None
    if detection.master == found.pid:  # setup() in the master (--preload): tidy at exit
        atexit.register(_remove_if_master, path, found.pid)
    return path


def _private_dir(path: str) -> bool:
    """Make ``path`` (0700) or accept it if it is ours: a directory, not a link, owned by us."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        warnings.warn(f"{UNSURE} ({path}: {exc})", RuntimeWarning, stacklevel=5)
        return False
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        warnings.warn(f"{UNSURE} ({path} is not ours)", RuntimeWarning, stacklevel=5)
        return False
    return True


def _remove_if_master(path: str, master: int) -> None:
    if os.getpid() == master:  # forked workers inherit this hook; only the master tidies
        shutil.rmtree(path, ignore_errors=True)
