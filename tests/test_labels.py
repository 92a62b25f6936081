import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_roi_datagen.labels import (
    LabelValueError,
    LabelVocabulary,
    encode_labels,
    normalize_label,
)


def test_vocabulary_is_sorted_and_independent_of_row_order():
    a = LabelVocabulary.from_values(["dog", "cat", "bird", "cat"], name="name")
    b = LabelVocabulary.from_values(["cat", "bird", "dog"], name="name")
    assert a == b
    assert a.classes == ("bird", "cat", "dog")


def test_numbers_sort_numerically_and_integral_floats_are_integers():
    vocab = LabelVocabulary.from_values([10, 2.0, 1], name="grade")
    assert vocab.classes == (1, 2, 10)
    assert vocab.index(2) == 1


def test_json_round_trip_keeps_classes_name_and_oov():
    vocab = LabelVocabulary(["b", "a"], name="type", oov=True)
    again = LabelVocabulary.from_json(vocab.to_json())
    assert again == vocab
    assert again.classes == ("b", "a")  # a given order is kept
    assert again.num_classes == 3


def test_unknown_label_is_an_error_naming_the_value_and_vocabulary():
    vocab = LabelVocabulary(["cat", "dog"], name="name")
    with pytest.raises(LabelValueError, match=r"'cow' is not in the vocabulary of 'name'.*'cat', 'dog'"):
        vocab.index("cow")


def test_oov_maps_unknown_labels_to_the_extra_index():
    vocab = LabelVocabulary(["cat", "dog"], oov=True)
    assert vocab.index("cow") == 2
    assert vocab.decode([0, 2]) == ["cat", "<oov>"]


def test_whitespace_is_stripped_and_checkboxes_give_their_option():
    assert normalize_label("  cat \t") == "cat"
    assert normalize_label({"red": True, "blue": False}) == "red"


@pytest.mark.parametrize(("value", "kind"), [
    (None, "label_missing"), (float("nan"), "label_missing"), ("  ", "label_missing"),
    ({"a": True, "b": True}, "label_ambiguous"), ({"a": False}, "label_missing"),
    (["a", "b"], "label_ambiguous"),
])
def test_unusable_labels_name_their_problem(value, kind):
    with pytest.raises(LabelValueError) as info:
        normalize_label(value)
    assert info.value.kind == kind


def test_duplicate_classes_after_normalisation_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        LabelVocabulary(["cat", "cat "], name="name")


def test_encoding_modes():
    codes = np.array([2, 0])
    one_hot = encode_labels(codes, 3, "categorical")
    assert one_hot.dtype == np.float32 and one_hot.tolist() == [[0, 0, 1], [1, 0, 0]]
    ints = encode_labels(codes, 3, "int")
    assert ints.dtype == np.int32 and ints.tolist() == [2, 0]


@given(st.lists(st.text(min_size=1).filter(lambda s: s.strip()), min_size=1, max_size=30))
def test_every_seen_value_round_trips_through_its_index(values):
    vocab = LabelVocabulary.from_values(values)
    assert [vocab.classes[vocab.index(v)] for v in values] == [v.strip() for v in values]
