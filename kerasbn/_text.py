"""Text that came from a file, made safe for where it goes: a terminal (no control or
escape sequences) or a Markdown document (no HTML, no table breaks, no comment markers
that could end a generated block)."""

from __future__ import annotations

import unicodedata

__all__ = ["markdown_safe", "terminal_safe"]


def terminal_safe(text: object) -> str:
    """``text`` safe to print on any terminal and under a strict UTF-8 locale: control,
    format and escape characters (and undecodable surrogates) shown as escapes."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cs", "Cf") and char != " ":
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


# Characters with a meaning in Markdown tables, inline code or HTML.
_MARKDOWN = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "|": "\\|", "`": "'"}


def markdown_safe(text: object) -> str:
    """``text`` as inert Markdown: HTML and comment markers escaped, table cells and
    code spans kept whole, line breaks and control characters as single spaces (a
    name cannot start a heading or a new table row). Names kerasbn makes itself
    (``bn+dropout``, ``bn@post-momentum0.9``) pass unchanged."""
    out = []
    for char in str(text):
        if char in _MARKDOWN:
            out.append(_MARKDOWN[char])
        elif unicodedata.category(char) in ("Cc", "Cs", "Cf", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)
