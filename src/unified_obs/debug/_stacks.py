"""Thread and asyncio-task stacks as plain text: file, line and function of each frame only.

No local variables, arguments or exception messages are shown (they may hold secrets),
and every listing is bounded (threads, tasks, frames).  Thread stacks come from
``_compat.cpython.current_frames`` (``sys._current_frames()`` where its probe says yes;
elsewhere the threads are listed without stacks); tasks from the running event loops,
found by one pass over the objects the garbage collector tracks, each read with
``asyncio.all_tasks`` and followed down the chain of coroutines it awaits (``cr_await``).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Final

from .._compat import cpython

__all__ = ["task_stacks", "thread_stacks"]

MAX_THREADS: Final = 256
MAX_TASKS: Final = 256
MAX_FRAMES: Final = 64
_NO_STACK: Final = "  (stack unavailable: this interpreter does not give threads' frames)\n"


def thread_stacks() -> str:
    """Every thread's stack, innermost frame last, as Python prints tracebacks (the
    threads alone, where the interpreter does not give their frames)."""
    threads = {t.ident: t for t in threading.enumerate() if t.ident is not None}
    frames = cpython.current_frames()
    idents = list(threads if frames is None else frames)
    blocks = []
    for ident in idents[:MAX_THREADS]:
        frame = None if frames is None else frames[ident]
        blocks.append(_thread_block(ident, threads.get(ident), frame))
    return _listing("threads", len(idents), MAX_THREADS, blocks)


def _thread_block(ident: int, thread: threading.Thread | None, frame: FrameType | None) -> str:
    title = thread.name if thread is not None else "(not started by threading)"
    daemon = " daemon" if thread is not None and thread.daemon else ""
    stack = _NO_STACK if frame is None else _frames(frame)
    return f"Thread {ident} {title!r}{daemon}:\n{stack}"


def _frames(frame: FrameType) -> str:
    stack = traceback.extract_stack(frame, limit=MAX_FRAMES)
    return _format(stack)


def _format(stack: traceback.StackSummary) -> str:
    lines = [f'  File "{f.filename}", line {f.lineno}, in {f.name}\n' for f in stack]
    return "".join(lines) or "  (no Python frames)\n"


def task_stacks() -> str:
    """Every pending task of every running event loop, with its coroutine's stack."""
    tasks = [task for loop in running_loops() for task in _tasks_of(loop)]
    blocks = [_task_block(task) for task in tasks[:MAX_TASKS]]
    return _listing("tasks", len(tasks), MAX_TASKS, blocks)


def running_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops running now, in any thread (one pass over the tracked objects)."""
    # type(), not isinstance(): isinstance reads __class__, which a lazy proxy (Django's
    # unconfigured settings) answers by raising
    found = (obj for obj in gc.get_objects() if issubclass(type(obj), asyncio.AbstractEventLoop))
    return [loop for loop in found if loop.is_running()]


def _tasks_of(loop: asyncio.AbstractEventLoop) -> Iterable[asyncio.Task[object]]:
    try:
        return sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name())
    except RuntimeError:  # the set changed under us too often: show nothing for this loop
        return ()


def _task_block(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    stack = traceback.StackSummary.extract(
        ((frame, frame.f_lineno) for frame in _await_chain(coro)), lookup_lines=False
    )
    return f"Task {task.get_name()!r} running {name}:\n{_format(stack)}"


def _await_chain(coro: object) -> list[FrameType]:
    """The frames of ``coro`` and of what it awaits, outermost first (``Task.get_stack``
    shows only the outermost frame of a suspended coroutine)."""
    frames: list[FrameType] = []
    while coro is not None and len(frames) < MAX_FRAMES:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if not isinstance(frame, FrameType):
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def _listing(kind: str, total: int, limit: int, blocks: list[str]) -> str:
    head = f"{total} {kind}" + (f" (first {limit} shown)" if total > limit else "") + "\n\n"
    return head + "\n".join(blocks)
