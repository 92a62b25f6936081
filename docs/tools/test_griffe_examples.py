"""The Keras-style `Example:` bodies become Google-style `Examples:` sections, and nothing else changes."""

from __future__ import annotations

from griffe_examples import indent_examples


def test_an_unindented_example_is_indented_under_examples() -> None:
    text = "Summary.\n\nArgs:\n    x: A value.\n\nExample:\n>>> f(1)\n2\n\nReturns:\n    Twice x."
    assert indent_examples(text) == (
        "Summary.\n\nArgs:\n    x: A value.\n\nExamples:\n    >>> f(1)\n    2\n\nReturns:\n    Twice x.")


def test_a_fenced_example_keeps_its_lines_even_those_that_look_like_titles() -> None:
    text = "Example:\n```python\nArgs:\nds = f()\n```\n"
    assert indent_examples(text) == "Examples:\n    ```python\n    Args:\n    ds = f()\n    ```\n"


def test_an_indented_example_is_left_as_it_is() -> None:
    text = "Example:\n    >>> f(1)\n    2"
    assert indent_examples(text) == text
