"""Every Python block in README.md and docs/**/*.md runs as written, and the docs site
builds with ``mkdocs build --strict``.

A fenced ``python`` block is, by its first line:

- ``# fragment ...``: compiled only (top-level ``await`` allowed);
- ``# serve: module:attr [METHOD] [/path]``: saved as ``module.py`` and served by uvicorn
  (``# serve-wsgi:``: gunicorn) on a free loopback port; the request (``GET /`` by
  default), ``/metrics`` and ``/livez`` must answer 2xx and ``/metrics`` must hold
  ``http_server_request_duration_seconds``;
- anything else: a complete program, run with this interpreter from an empty directory
  (OTLP going to a real receiver the test runs, so nothing waits on a collector) and it
  must exit 0 within 30 s.

A block that only includes a file (``--8<-- "docs/getting-started/x.py"``) is that file:
compiled here, run under its server by tests/test_docs_getting_started.py.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import unified_obs
from tests.otlp_receiver import otlp_receiver
from tests.served import ROOT, environment, serve
from tests.test_docs_getting_started import GETTING_STARTED, HTTP_EXAMPLES

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 30
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_INCLUDE = re.compile(r"""^-{2}8<-{2}\s+["']?(?P<path>[^"'\s]+)["']?\s*$""")
_SERVE = re.compile(
    r"^#\s*(?P<kind>serve|serve-wsgi):\s*(?P<module>\w+):(?P<attr>\w+)"
    r"(?:\s+(?P<method>[A-Z]+))?(?:\s+(?P<path>/\S*))?\s*$"
)
INCLUDED_AND_TESTED = {
    *(example.file for example in HTTP_EXAMPLES),
    "grpc_server.py",
    "script.py",
}
"""The getting-started files tests/test_docs_getting_started.py runs under their servers."""


@dataclass(frozen=True)
class Block:
    """One fenced ``python`` block: where it starts and its text (indentation removed)."""

    where: str
    source: str

    @property
    def first_line(self) -> str:
        """The block's first line, stripped."""
        return self.source.lstrip("\n").split("\n", 1)[0].strip()


def _markdown_files() -> list[Path]:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *pages]


def python_blocks(text: str, name: str) -> Iterator[Block]:
    """The fenced ``python``/``py`` blocks of one Markdown text, in order."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lstrip(".").lower()
        start, body = index, []
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
                break
            body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else "")
            index += 1
        index += 1
        if language in ("python", "py", "python3"):
            yield Block(f"{name}:{start}", "\n".join(body) + "\n")


def _all_blocks() -> list[Block]:
    found: list[Block] = []
    for path in _markdown_files():
        name = path.relative_to(ROOT).as_posix()
        found.extend(python_blocks(path.read_text(encoding="utf-8"), name))
    return found


BLOCKS = _all_blocks()


def _included(block: Block) -> Path | None:
    """The file a block includes when that is all it does."""
    lines = [line for line in block.source.split("\n") if line.strip()]
    match = _INCLUDE.match(lines[0].strip()) if len(lines) == 1 else None
    return ROOT / match["path"] if match else None


def _compile(source: str, where: str) -> None:
    compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_blocks_were_found() -> None:
    """The collector sees the README's quickstart and many docs blocks (a broken fence
    pattern would silently test nothing)."""
    assert any(block.where.startswith("README.md:") for block in BLOCKS)
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.where)
def test_python_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    """The block is a fragment that compiles, a served app that answers, an included
    getting-started file that the server tests run, or a program that exits 0."""
    included = _included(block)
    if included is not None:
        assert included.parent == GETTING_STARTED, f"{block.where}: includes {included}"
        assert included.name in INCLUDED_AND_TESTED, f"{block.where}: {included.name} untested"
        _compile(included.read_text(encoding="utf-8"), str(included))
        return
    if block.first_line.startswith("# fragment"):
        _compile(block.source, block.where)
        return
    served = _SERVE.match(block.first_line)
    if served is not None:
        _serve_block(block, served, tmp_path)
        return
    _run_block(block, tmp_path)


def _run_block(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.source, encoding="utf-8")
    with otlp_receiver() as (endpoint, _received):
        try:
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=environment(endpoint, tmp_path),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"{block.where}: still running after {RUN_TIMEOUT} s: {expired.stdout!r}")
    output = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{output}"


def _serve_block(block: Block, line: re.Match[str], tmp_path: Path) -> None:
    (tmp_path / f"{line['module']}.py").write_text(block.source, encoding="utf-8")
    server = "gunicorn" if line["kind"] == "serve-wsgi" else "uvicorn"
    method, path = line["method"] or "GET", line["path"] or "/"
    with otlp_receiver() as (endpoint, _received):
        env = environment(endpoint, tmp_path)
        target = f"{line['module']}:{line['attr']}"
        with serve(server, target, cwd=tmp_path, env=env) as running:
            answer = httpx.request(method, running.url + path, timeout=10)
            assert answer.is_success, f"{block.where}: {method} {path} -> {answer.status_code}"
            scrape = httpx.get(running.url + "/metrics", timeout=10)
            assert scrape.is_success
            assert "http_server_request_duration_seconds" in scrape.text
            assert httpx.get(running.url + "/livez", timeout=10).is_success
            running.stop()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.where)
def test_every_unified_obs_name_a_block_uses_exists(block: Block) -> None:
    """Fragments included: every ``from unified_obs... import name`` resolves and every
    ``obs.name`` (``import unified_obs as obs``) is a public name, so no page shows an
    API that was renamed or removed."""
    included = _included(block)
    source = included.read_text(encoding="utf-8") if included else block.source
    tree = ast.parse(source, block.where)
    assert not _missing_names(tree), f"{block.where}: {_missing_names(tree)}"


def _missing_names(tree: ast.AST) -> list[str]:
    aliases = {"unified_obs"}
    missing: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name.startswith("unified_obs"):
                    missing += _unimportable(name.name)
                    if name.name == "unified_obs":
                        aliases.add(name.asname or name.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unified_obs"):
            module = node.module or ""
            missing += _unimportable(module, [alias.name for alias in node.names])
    missing += [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr not in unified_obs.__all__
    ]
    return missing


def _unimportable(module: str, names: Iterable[str] = ()) -> list[str]:
    """What of ``from module import names`` fails (a name may be a submodule)."""
    try:
        imported = importlib.import_module(module)
    except ImportError:
        return [module]
    return [
        f"{module}.{name}"
        for name in names
        if not hasattr(imported, name) and _unimportable(f"{module}.{name}")
    ]


def test_a_stale_name_is_reported() -> None:
    """A renamed function, a missing import and a missing module are each reported."""
    source = (
        "# fragment\nimport unified_obs as obs\nfrom unified_obs.asgi import Nope\n"
        "import unified_obs.nowhere\nobs.counted\nobs.no_such_thing()\n"
    )
    assert _missing_names(ast.parse(source)) == [
        "unified_obs.asgi.Nope",
        "unified_obs.nowhere",
        "obs.no_such_thing",
    ]


def test_a_block_with_an_undefined_name_fails(tmp_path: Path) -> None:
    """The harness is not lenient: a program raising ``NameError`` fails its test."""
    with pytest.raises(AssertionError, match="NameError: name 'charge' is not defined"):
        _run_block(Block("page.md:1", "import unified_obs\ncharge(1)\n"), tmp_path)


WSGI_BLOCK = """\
# serve-wsgi: hello:app GET /hello
import unified_obs as obs
from unified_obs.wsgi import ObservabilityMiddleware

obs.setup(service_name="hello")


def hello(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"hello"]


app = ObservabilityMiddleware(hello)
"""


def test_serve_wsgi_block_is_served_by_gunicorn(tmp_path: Path) -> None:
    """The harness's ``# serve-wsgi:`` path serves a WSGI block under gunicorn and checks
    the request, ``/metrics`` and ``/livez`` (no page uses it yet)."""
    block = Block("page.md:1", WSGI_BLOCK)
    line = _SERVE.match(block.first_line)
    assert line is not None
    assert (line["kind"], line["module"], line["method"], line["path"]) == (
        "serve-wsgi",
        "hello",
        "GET",
        "/hello",
    )
    _serve_block(block, line, tmp_path)


def test_fence_parser_handles_indentation_and_other_languages() -> None:
    """Blocks inside list items lose their indentation; other languages are skipped;
    the reported line is the opening fence's (1-based)."""
    text = "intro\n\n- item:\n\n  ```python\n  x = 1\n  ```\n\n```bash\nls\n```\n"
    (block,) = python_blocks(text, "page.md")
    assert block.source == "x = 1\n"
    assert block.where == "page.md:5"


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds: no broken link, missing include, bad anchor or
    docstring the API reference cannot render."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**environment(None, tmp_path), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "getting-started" / "index.html").is_file()
