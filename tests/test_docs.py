"""The README and every page under docs/ run as written.

Each Markdown file's fenced blocks run in file order, in a fresh temporary folder that holds a
copy of the repository's ``examples/`` (so ``examples/zmumu/...`` paths work), with HOME and the
XDG folders inside it so that nothing leaks in or out:

- ``bash``/``sh``/``shell`` blocks with ``bash -euo pipefail`` (``console`` blocks: their ``$ ``
  lines), with this interpreter's ``highrate`` first on PATH;
- ``python`` blocks in one interpreter per file, in order, so a block may use the names an
  earlier block of the same file defined (``>>> `` blocks: their prompt lines);
- ``yaml`` blocks are parsed; other blocks (text, ini, toml, ...) are left alone.

A block that cannot run here (it installs packages, needs a cluster, a remote host or
credentials) has, on the line right before its fence, ``<!-- not run: REASON -->``; the reason
is required. A file's blocks stop at the first failure, which names the file and line.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL, PYTHON, YAML = {"bash", "sh", "shell", "console"}, {"python", "py", "python3", "pycon"}, {"yaml", "yml"}
MIN_RUN = {"README.md": 8}  # blocks that must run, so that the test cannot pass by skipping them all
TIMEOUT = 300  # seconds per block

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
_MARKER = re.compile(r"^\s*<!--\s*not run\b(?P<rest>.*?)-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # line of the first content line, counted from 1
    lang: str
    code: str
    not_run: str | None  # the reason given by a <!-- not run: ... --> marker

    @property
    def where(self) -> str:
        return f"{_name(self.page)}:{self.line}"


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown file; raises on a marker without a reason or a fence."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        marker = _MARKER.match(lines[i])
        if marker:
            where = f"{_name(page)}:{i + 1}"
            reason = marker.group("rest").strip()
            assert reason.startswith(":") and reason[1:].strip(), f"{where}: say why: <!-- not run: REASON -->"
            assert i + 1 < len(lines) and _FENCE.match(lines[i + 1]), f"{where}: a not-run marker must precede a fence"
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening.group("fence"), len(opening.group("indent"))
        end = i + 1
        while end < len(lines) and not re.match(rf"^\s*{fence[0]}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        body = [ln[indent:] if ln[:indent].strip() == "" else ln.lstrip() for ln in lines[i + 1:end]]
        previous = _MARKER.match(lines[i - 1]) if i else None
        reason = previous.group("rest").strip()[1:].strip() if previous else None
        out.append(Block(page, i + 2, opening.group("info").lower(), "\n".join(body) + "\n", reason))
        i = end + 1
    return out


def _commands(block: Block) -> str:
    """The shell code of a block: a console block's ``$ `` lines and their continuations."""
    if block.lang != "console":
        return block.code
    keep, going = [], False
    for line in block.code.splitlines():
        if line.startswith("$ ") or going:
            keep.append(line[2:] if line.startswith("$ ") else line)
            going = line.rstrip().endswith("\\")
    return "\n".join(keep) + "\n"


def _python(block: Block) -> str:
    """The Python code of a block, prefixed by blank lines so tracebacks give the page's lines."""
    code = block.code
    if code.lstrip().startswith(">>>"):
        code = "\n".join(ln[4:] if ln.startswith((">>> ", "... ")) else ("" if ln.strip() in (">>>", "...") else "#")
                         for ln in code.splitlines()) + "\n"
    return "\n" * (block.line - 1) + code


# One interpreter per page: reads blocks as JSON lines on stdin, runs each in one namespace and
# answers on the original stdout; what the blocks print goes to stderr. Run with -c, so that
# processes started with spawn (a Dask LocalCluster) do not run this loop again.
_SERVER = r"""
import json, os, sys, traceback
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
namespace = {"__name__": "__main__"}
for message in sys.stdin:
    block = json.loads(message)
    try:
        exec(compile(block["code"], block["where"], "exec"), namespace)
        answer = {"ok": True}
    except BaseException:
        answer = {"ok": False, "error": traceback.format_exc()}
    sys.stdout.flush(); sys.stderr.flush()
    answers.write(json.dumps(answer) + "\n"); answers.flush()
"""


class Session:
    """A temporary folder with a copy of examples/, its environment, and the page's interpreter."""

    def __init__(self, tmp: Path) -> None:
        self.folder = tmp / "work"  # the blocks' working folder; HOME, caches and the log beside it
        shutil.copytree(ROOT / "examples", self.folder / "examples",
                        ignore=shutil.ignore_patterns("data", "__pycache__", "out"))
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("HIGHRATE_", "XDG_", "RUCIO_", "X509_", "BEARER_TOKEN", "PYTEST_"))}
        for name, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config"),
                          ("XDG_RUNTIME_DIR", "run")):
            (tmp / sub).mkdir(mode=0o700)
            self.env[name] = str(tmp / sub)
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.env["MPLBACKEND"] = "Agg"
        self.log = (tmp / "python.log").open("w+")
        self.python: subprocess.Popen | None = None

    def shell(self, block: Block) -> None:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", _commands(block)], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode != 0:
            pytest.fail(f"{block.where}: exit status {done.returncode}\n{block.code}\n--- stdout\n"
                        f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}", pytrace=False)

    def run_python(self, block: Block) -> None:
        if self.python is None:
            self.python = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=self.folder, env=self.env, text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.python.stdin.write(json.dumps({"code": _python(block), "where": str(block.page)}) + "\n")
        self.python.stdin.flush()
        ready, _, _ = select.select([self.python.stdout], [], [], TIMEOUT)
        if not ready:
            self.python.kill()
            pytest.fail(f"{block.where}: still running after {TIMEOUT} s\n{block.code}", pytrace=False)
        answer = self.python.stdout.readline()
        if not answer:
            self.log.seek(0)
            pytest.fail(f"{block.where}: the interpreter ended\n{block.code}\n{self.log.read()[-3000:]}", pytrace=False)
        answer = json.loads(answer)
        if not answer["ok"]:
            pytest.fail(f"{block.where}:\n{block.code}\n{answer['error']}", pytrace=False)

    def close(self) -> None:
        if self.python is not None:
            self.python.stdin.close()
            try:
                self.python.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.python.kill()
                self.python.wait()
        self.log.close()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    found = blocks(page)
    for block in found:
        if block.lang in YAML and block.not_run is None:
            yaml.safe_load(block.code)  # a datasets file or profile the reader may copy
    runnable = [b for b in found if b.lang in SHELL | PYTHON and b.not_run is None]
    assert len(runnable) >= MIN_RUN.get(page.name if page.parent == ROOT else "", 0), \
        f"{page.name}: only {len(runnable)} blocks run"
    if not runnable:
        return
    session = Session(tmp_path)
    try:
        for block in runnable:
            if block.lang in SHELL:
                session.shell(block)
            else:
                session.run_python(block)
    finally:
        session.close()


def test_blocks_and_markers_are_found(tmp_path: Path) -> None:
    """The parser on a page with every kind of block: what runs, what is skipped and why."""
    page = tmp_path / "probe.md"
    page.write_text("# t\n\n<!-- not run: needs a cluster -->\n```bash\nexit 1\n```\n\n"
                    "```console\n$ echo hi \\\n  there\nhi there\n```\n\n- item\n\n  ```python\n  x = 1\n  ```\n\n"
                    "```yaml\na: [1, 2]\n```\n\n````text\n```\nnot code\n````\n")
    found = blocks(page)
    assert [(b.lang, b.line, b.not_run) for b in found] == [
        ("bash", 5, "needs a cluster"), ("console", 9, None), ("python", 17, None), ("yaml", 21, None),
        ("text", 25, None)]
    assert _commands(found[1]) == "echo hi \\\n  there\n"
    assert found[2].code == "x = 1\n" and found[4].code == "```\nnot code\n"
    page.write_text("<!-- not run -->\n```bash\ntrue\n```\n")
    with pytest.raises(AssertionError, match="say why"):
        blocks(page)
    page.write_text("<!-- not run: a reason -->\n\n```bash\ntrue\n```\n")
    with pytest.raises(AssertionError, match="must precede a fence"):
        blocks(page)
