"""A griffe extension: read Keras-style `Example:` sections as Google-style `Examples:`.

The package's docstrings follow Keras: `Example:` is followed by an unindented
fenced block or doctest (`>>>`). Google style (what griffe parses) wants a
section's body indented under its title; unindented, the body is read as
plain text and `>>>` becomes nested quotes. This indents each such body (up to
the next section title) before griffe parses the docstring, so the reference
shows the examples as code; the docstrings stay as Keras writes them.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^Examples?:\s*$")
_SECTION = re.compile(r"^(Args|Arguments|Returns|Raises|Yields|Attributes|Notes?|Warnings?|"
                      r"References|See Also|Examples?):\s*$")


def indent_examples(text: str) -> str:
    """Indents the body of every unindented top-level `Example:` section."""
    lines = text.split("\n")
    inside = False
    fenced = False
    for i, line in enumerate(lines):
        if not fenced and _SECTION.match(line):
            inside = bool(_EXAMPLE.match(line)) and _body_unindented(lines, i)
            if inside:  # griffe reads "Example" as an admonition, "Examples" as code
                lines[i] = "Examples:"
            continue
        if inside:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if line.strip():
                lines[i] = "    " + line
    return "\n".join(lines)


def _body_unindented(lines: list[str], title: int) -> bool:
    body = next((line for line in lines[title + 1:] if line.strip()), "")
    return not body.startswith((" ", "\t"))


class KerasExamples(griffe.Extension):
    """Indents `Example:` bodies of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrites the object's docstring before it is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = indent_examples(obj.docstring.value)
