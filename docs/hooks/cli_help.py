"""MkDocs hook: a line ``<!-- highrate-help: VERB -->`` in a page becomes the output of
``highrate VERB --help`` (``<!-- highrate-help: -->`` for ``highrate --help``) in a text block, so
the command line reference always says what the installed command does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

_MARKER = re.compile(r"^<!-- highrate-help:([\w -]*)-->$", re.M)

# One interpreter for all the verbs of a page: argparse prints the help and exits.
_HELPS = r"""
import contextlib, io, json, sys
from highrate.cli.main import main
out = {}
for verb in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        main([*verb.split(), "--help"])
    out[verb] = text.getvalue()
print(json.dumps(out))
"""


def _helps(verbs: list[str]) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-c", _HELPS, json.dumps(verbs)], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    return json.loads(done.stdout)


def on_page_markdown(markdown: str, **kwargs) -> str:
    verbs = [m[1].strip() for m in _MARKER.finditer(markdown)]
    if not verbs:
        return markdown
    helps = _helps(verbs)
    return _MARKER.sub(lambda m: f"```text\n{helps[m[1].strip()].rstrip()}\n```", markdown)
