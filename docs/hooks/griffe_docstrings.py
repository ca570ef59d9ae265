"""A griffe extension for the API reference: highrate's docstrings are prose written for
``help()``, with reStructuredText literals and Sphinx roles, not Markdown. Before mkdocstrings
renders one, Sphinx roles (``:class:`~highrate.errors.ConfigError```) become code spans
(``ConfigError``) and runs of ``>>>`` lines become Python console code blocks; the source files
are not changed."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|obj|exc|data|const):`(~?)([^`]+)`")
_SKIP = re.compile(r"\s*#\s*doctest:.*$")


def _role(match: re.Match[str]) -> str:
    short, target = match[1], match[2].strip()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _doctests(text: str) -> str:
    """Wrap each run of ``>>>`` lines (and their output, up to a blank line) in a pycon fence."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith(">>>"):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(_SKIP.sub("", lines[i]))
                i += 1
            out += ["", f"{indent}```pycon", *block, f"{indent}```", ""]
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)


def markdown(text: str) -> str:
    return _doctests(_ROLE.sub(_role, text))


class ProseDocstrings(griffe.Extension):
    """Turns Sphinx roles into code spans and doctest lines into code blocks."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
