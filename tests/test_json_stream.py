"""The streaming JSON scanner gives what `json.load` gives, whatever the chunk boundaries."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_roi_datagen.formats import json_stream
from keras_roi_datagen.formats.json_stream import JsonStreamError, iter_object_members

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)


def _rebuild(text: str, arrays: tuple[str, ...]) -> dict:
    out: dict = {}
    for key, index, value in iter_object_members(io.StringIO(text), arrays):
        if index is None:
            out[key] = value
        else:
            out.setdefault(key, []).append(value)
    return out


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["images", "annotations", "info", "x"]),
                       st.one_of(_values, st.lists(_values, max_size=5)), max_size=4),
       st.integers(1, 9), st.sampled_from(["", " ", "\n  "]))
def test_same_as_json_load_at_any_chunk_size(data: dict, chunk: int, space: str) -> None:
    old = json_stream._CHUNK
    json_stream._CHUNK = chunk
    try:
        text = json.dumps(data, indent=1 if space else None)
        rebuilt = _rebuild(text, ("images", "annotations"))
    finally:
        json_stream._CHUNK = old
    assert rebuilt == data


@pytest.mark.parametrize(("text", "line"), [('{"a": [1, 2,, 3]}', 1), ('{\n"a": 1\n"b": 2}', 3),
                                       ("[1, 2]", 1), ('{"a": [1, 2]', 1),
                                       ('{"a": 1} extra', 1)])
def test_invalid_json_names_the_line(text: str, line: int) -> None:
    with pytest.raises(JsonStreamError) as info:
        list(iter_object_members(io.StringIO(text), ("a",)))
    assert info.value.line == line
