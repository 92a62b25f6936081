import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_roi_datagen.boxes import (
    BoxFormat,
    ShapeError,
    box_from_values,
    box_problem,
    clip_box,
    shape_to_xyxy,
)


def test_rect_circle_polygon_polyline_become_their_bounding_box():
    assert shape_to_xyxy({"name": "rect", "x": 5, "y": 6, "width": 10, "height": 4}) == (5, 6, 15, 10)
    assert shape_to_xyxy({"name": "circle", "cx": 10, "cy": 20, "r": 5}) == (5, 15, 15, 25)
    poly = {"name": "polygon", "all_points_x": [3, 9, 5], "all_points_y": [7, 2, 11]}
    assert shape_to_xyxy(poly) == (3, 2, 9, 11)
    assert shape_to_xyxy({**poly, "name": "polyline"}) == (3, 2, 9, 11)


def test_ellipse_bounding_box_follows_rotation():
    flat = shape_to_xyxy({"name": "ellipse", "cx": 50, "cy": 50, "rx": 20, "ry": 5})
    assert flat == (30, 45, 70, 55)
    turned = shape_to_xyxy({"name": "ellipse", "cx": 50, "cy": 50, "rx": 20, "ry": 5,
                            "theta": math.pi / 2})
    assert turned == pytest.approx((45, 30, 55, 70))


def test_shape_given_as_via_json_text_and_numeric_strings():
    assert shape_to_xyxy('{"name":"rect","x":"1.5","y":2,"width":3,"height":4}') == (1.5, 2, 4.5, 6)


@pytest.mark.parametrize(("shape", "kind"), [
    ({"name": "point", "cx": 1, "cy": 2}, "shape_point"),
    ({"name": "hexagon", "x": 1}, "shape_unknown"),
    ({"name": "rect", "x": 1, "y": 2, "width": 3}, "shape_missing_key"),
    ({"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1]}, "shape_bad_points"),
    ({"name": "rect", "x": "a", "y": 2, "width": 3, "height": 4}, "box_not_a_number"),
    ({}, "shape_empty"),
    ("{not json", "bad_json"),
])
def test_unusable_shapes_name_their_problem(shape, kind):
    with pytest.raises(ShapeError) as info:
        shape_to_xyxy(shape)
    assert info.value.kind == kind


def test_box_formats_agree():
    expected = (10.0, 20.0, 40.0, 60.0)
    assert box_from_values([10, 20, 30, 40], "xywh") == expected
    assert box_from_values([10, 20, 40, 60], BoxFormat.XYXY) == expected
    assert box_from_values([0.1, 0.2, 0.3, 0.4], "rel_xywh") == pytest.approx((0.1, 0.2, 0.4, 0.6))
    assert BoxFormat("rel_xyxy").relative and not BoxFormat.XYWH.relative


def test_unknown_box_format_is_a_clear_error():
    with pytest.raises(ValueError, match=r"box_format.*Received: box_format='cxcywh'"):
        BoxFormat.parse("cxcywh")


@pytest.mark.parametrize(("box", "kind"), [
    ((0, 0, 0, 5), "box_degenerate"),
    ((10, 0, 5, 5), "box_degenerate"),
    ((0, 0, float("nan"), 5), "box_not_finite"),
    ((0, 0, float("inf"), 5), "box_not_finite"),
])
def test_degenerate_and_non_finite_boxes_are_refused(box, kind):
    assert box_problem(box)[0] == kind


def test_relative_box_wholly_outside_is_refused():
    assert box_problem((1.2, 0.1, 1.5, 0.3), relative=True)[0] == "box_outside_image"
    assert box_problem((0.9, 0.1, 1.5, 0.3), relative=True) is None


def test_clipping_keeps_the_inside_part_only():
    assert clip_box((-10, -10, 50, 50), 40, 30) == (0, 0, 40, 30)
    assert clip_box((50, 0, 60, 10), 40, 30) is None


coordinate = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@given(st.tuples(coordinate, coordinate, coordinate, coordinate),
       st.integers(1, 5000), st.integers(1, 5000))
def test_clipped_box_always_lies_inside_the_image(box, width, height):
    clipped = clip_box(box, width, height)
    if clipped is not None:
        x0, y0, x1, y1 = clipped
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
