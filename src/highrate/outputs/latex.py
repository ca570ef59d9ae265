"""Axis titles from matplotlib mathtext (``$p_{T}$``) to ROOT's TLatex (``#it{p}_{T}``).

Plots keep the mathtext labels of the analysis; ROOT files get the TLatex form, so that the
titles read right in a TBrowser and in ROOT macros. Inside ``$...$``: commands become ROOT's
(``\\mu`` -> ``#mu``, ``\\mathrm{x}`` -> ``x``, ``\\frac`` -> ``#frac``), Latin letters become italic
as mathtext draws them (``#it{p}``) except in sub- and superscripts (``_{T}``, ``^{miss}``),
and spaces are dropped, as mathtext ignores them. Text outside ``$...$`` is kept as it is.
"""

from __future__ import annotations

import re

# commands with a different name in TLatex; every other \name becomes #name (Greek letters, ...)
_RENAMED = {
    "to": "#rightarrow", "ge": "#geq", "le": "#leq", "ne": "#neq", "ldots": "#dots", "cdots": "#dots",
    "overline": "#bar",
}
_SPACES = {",": " ", ";": " ", ":": " ", " ": " ", "!": "", "quad": "  ", "qquad": "   "}
_UPRIGHT = {"mathrm", "text", "textrm", "rm", "operatorname"}  # their argument: plain text
_TOKEN = re.compile(r"\\([A-Za-z]+|.)|([A-Za-z]+)|(\s+)|(.)", re.S)


def to_tlatex(text: str) -> str:
    """``text`` with every ``$...$`` math span written in ROOT's TLatex; the rest unchanged.

    An unmatched ``$`` is kept as it is; ``\\$`` outside math is a literal dollar.
    """
    out, i = [], 0
    while i < len(text):
        if text.startswith("\\$", i):
            out.append("$")
            i += 2
            continue
        if text[i] == "$":
            end = _closing(text, i + 1)
            if end is not None:
                out.append(_math(text[i + 1 : end], italic=True))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int | None:
    """The index of the ``$`` closing a math span that starts at ``start``, or None."""
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "$":
            return i
        i += 1
    return None


def _group(text: str, start: int) -> tuple[str, int]:
    """The argument at ``start`` (a ``{...}`` group or one character/command) and where it ends."""
    while start < len(text) and text[start].isspace():
        start += 1
    if start >= len(text):
        return "", start
    if text[start] == "{":
        depth, i = 0, start
        while i < len(text):
            if text[i] == "\\":  # an escaped character, e.g. \{, never a brace of the group
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + 1 : i], i + 1
            i += 1
        return text[start + 1 :], len(text)
    if text[start] == "\\":
        m = _TOKEN.match(text, start)
        assert m is not None
        return m.group(0), m.end()
    return text[start], start + 1


def _math(text: str, *, italic: bool) -> str:
    """One math expression in TLatex; ``italic``: Latin letters at this level are drawn italic."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # the pattern matches any character
        pos = m.end()
        command, letters, space, other = m.groups()
        if space:
            continue
        if letters:
            # after a command, bare letters would extend its name (#mux): braced they do not
            after_command = bool(out) and re.search(r"#[A-Za-z]+$", out[-1]) is not None
            out.append(f"#it{{{letters}}}" if italic else f"{{{letters}}}" if after_command else letters)
        elif command is not None:
            if command in _SPACES:
                out.append(_SPACES[command])
            elif command in _UPRIGHT:
                arg, pos = _group(text, pos)
                out.append(_math(arg, italic=False) if "\\" in arg else arg)
            elif command in ("mathit", "it"):
                arg, pos = _group(text, pos)
                out.append(f"#it{{{_math(arg, italic=False)}}}")
            elif command in ("mathbf", "bf", "boldsymbol"):
                arg, pos = _group(text, pos)
                out.append(f"#bf{{{_math(arg, italic=False)}}}")  # bold upright, as mathtext draws it
            elif command == "frac":
                num, pos = _group(text, pos)
                den, pos = _group(text, pos)
                out.append(f"#frac{{{_math(num, italic=italic)}}}{{{_math(den, italic=italic)}}}")
            elif command in ("sqrt", "bar", "hat", "tilde", "vec", "dot", "overline"):
                arg, pos = _group(text, pos)
                out.append(f"{_RENAMED.get(command, '#' + command)}{{{_math(arg, italic=italic)}}}")
            elif command.isalpha():
                out.append(_RENAMED.get(command, "#" + command))
            else:  # an escaped character: \{ \} \% \_ \$
                out.append(command)
        elif other in ("_", "^"):
            arg, pos = _group(text, pos)
            out.append(f"{other}{{{_math(arg, italic=False)}}}")
        elif other is not None:
            out.append(other)
    return "".join(out)
