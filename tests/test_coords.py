"""vlfast.coords: mapping points and boxes between original pixels, model pixels and Qwen2-VL's 0-1000 range."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from vlfast.coords import (
    InvalidCoordinatesError,
    from_relative_1000,
    model_sizes_from_grid,
    to_model_coords,
    to_original_coords,
    to_relative_1000,
)
from vlfast.defaults import PATCH_SIZE
from vlfast.errors import UnsupportedOptionError, VlfastError
from vlfast.sizing import smart_resize

QWEN25_MAX_PIXELS = 12845056
#: (height, width) of originals spanning shrinking, enlarging and extreme aspect ratios.
ORIGINAL_SIZES = [(1080, 1920), (3024, 4032), (37, 53), (300, 451), (20, 3000), (4000, 333)]


def random_boxes(rng: np.random.Generator, size: tuple[int, int], count: int) -> np.ndarray:
    height, width = size
    corners = rng.uniform(0, 1, (count, 2, 2)) * [width, height]
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=-1)


@pytest.mark.parametrize("original", ORIGINAL_SIZES)
def test_round_trip_is_exact_up_to_float_rounding(original):
    model = smart_resize(*original, max_pixels=QWEN25_MAX_PIXELS)
    boxes = random_boxes(np.random.default_rng(0), original, 200)
    there = to_model_coords(boxes, original, model)
    np.testing.assert_allclose(to_original_coords(there, original, model), boxes, rtol=0, atol=1e-9)
    points = boxes[:, :2]
    there = to_model_coords(points, original, model, kind="point")
    np.testing.assert_allclose(to_original_coords(there, original, model, kind="point"), points, rtol=0, atol=1e-9)


@pytest.mark.parametrize("original", ORIGINAL_SIZES)
def test_integer_model_coordinates_map_back_within_half_a_model_pixel(original):
    """A model prints integer coordinates: each costs at most half a model pixel, in original pixels."""
    model = smart_resize(*original, max_pixels=QWEN25_MAX_PIXELS)
    boxes = random_boxes(np.random.default_rng(1), original, 200)
    printed = np.round(to_model_coords(boxes, original, model))
    back = to_original_coords(printed, original, model)
    half_pixel = 0.5 * np.array([original[1] / model[1], original[0] / model[0]] * 2)
    assert (np.abs(back - boxes) <= half_pixel + 1e-9).all()


def test_scaling_matches_the_resized_image():
    """A bright rectangle drawn on the original lands where its mapped box says, in the resized image."""
    original, model = (300, 451), (308, 448)
    box = [90, 60, 330, 210]
    canvas = np.zeros(original, np.uint8)
    canvas[box[1] : box[3], box[0] : box[2]] = 255
    resized = np.asarray(PIL.Image.fromarray(canvas).resize(model[::-1], PIL.Image.Resampling.BILINEAR))
    rows, columns = np.nonzero(resized >= 128)
    found = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
    np.testing.assert_allclose(to_model_coords(box, original, model), found, atol=1)


def test_xywh_and_xyxy_agree():
    original, model = (1080, 1920), (1092, 1932)
    xyxy = random_boxes(np.random.default_rng(2), original, 50)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=-1)
    mapped = to_model_coords(xywh, original, model, fmt="xywh")
    expected = to_model_coords(xyxy, original, model)
    np.testing.assert_allclose(mapped[:, :2], expected[:, :2])
    np.testing.assert_allclose(mapped[:, :2] + mapped[:, 2:], expected[:, 2:])


def test_boxes_and_points_scale_each_axis_independently():
    assert to_model_coords([10, 20, 30, 40], (100, 200), (50, 400)) == [20.0, 10.0, 60.0, 20.0]
    assert to_model_coords([[10, 20], [30, 40]], (100, 200), (50, 400), kind="point") == [[20.0, 10.0], [60.0, 20.0]]


# --- out of the image ---------------------------------------------------------------------------------------


def test_clamping_is_the_default_and_can_be_turned_off():
    original, model = (100, 100), (200, 200)
    assert to_model_coords([-10, 20, 150, 90], original, model) == [0.0, 40.0, 200.0, 180.0]
    assert to_model_coords([-10, 20, 150, 90], original, model, clamp=False) == [-20.0, 40.0, 300.0, 180.0]
    assert to_model_coords([[-5, 120]], original, model, kind="point") == [[0.0, 200.0]]
    # A box entirely outside collapses to a zero-area box on the border; xywh clamps its corners too.
    assert to_model_coords([120, 10, 130, 20], original, model) == [200.0, 20.0, 200.0, 40.0]
    assert to_model_coords([90, -10, 20, 20], original, model, fmt="xywh") == [180.0, 0.0, 20.0, 20.0]
    assert to_original_coords([190, 190, 260, 260], original, model) == [95.0, 95.0, 100.0, 100.0]


def test_zero_area_boxes_are_accepted():
    assert to_model_coords([10, 10, 10, 30], (100, 100), (200, 200)) == [20.0, 20.0, 20.0, 60.0]


@pytest.mark.parametrize(
    "coords, options, message",
    [
        ([30, 10, 20, 40], {}, r"box \[30.0, 10.0, 20.0, 40.0\] is inverted: need x2 >= x1 and y2 >= y1"),
        ([[0, 0, 5, 5], [0, 40, 10, 30]], {}, r"at index \(1,\) is inverted"),
        ([0, 0, -1, 5], {"fmt": "xywh"}, "need w >= 0 and h >= 0"),
        ([0, 0, 5, float("nan")], {}, "must be finite"),
        ([[0, float("inf")]], {"kind": "point"}, "must be finite"),
        ([1, 2], {}, r"boxes need 4 values on the last axis, got shape \(2,\); pass kind='point'"),
        ([1, 2, 3, 4], {"kind": "point"}, "points need 2 values.*pass kind='box'"),
        ([[1, 2, 3], [4, 5, 6]], {}, "boxes need 4 values"),
        (5, {}, "boxes need 4 values"),
        ([[1, 2, 3, 4], [1, 2]], {}, "rectangular"),
        (["a", "b", "c", "d"], {}, "rectangular"),
        (torch.zeros(4, device="meta"), {}, "meta tensor"),
    ],
)
def test_invalid_coordinates(coords, options, message):
    with pytest.raises(InvalidCoordinatesError, match=message):
        to_model_coords(coords, (100, 100), (200, 200), **options)


@pytest.mark.parametrize(
    "original, model, message",
    [
        ((0, 100), (200, 200), "original_size must hold positive sizes"),
        ((100, 100), (200, -1), "model_size must hold positive sizes"),
        ((100, 100, 3), (200, 200), "original_size must be"),
        ((100, 100), (1, 78, 138), "use model_sizes_from_grid"),
        ("big", (200, 200), "original_size must be"),
        ([(100, 100), (50, 50)], [(200, 200)] * 3, "original_size has 2 sizes but model_size has 3"),
    ],
)
def test_invalid_sizes(original, model, message):
    with pytest.raises(InvalidCoordinatesError, match=message):
        to_model_coords([0, 0, 1, 1], original, model)


def test_invalid_options():
    with pytest.raises(UnsupportedOptionError, match="fmt must be 'xyxy' or 'xywh'"):
        to_model_coords([0, 0, 1, 1], (10, 10), (20, 20), fmt="cxcywh")
    with pytest.raises(UnsupportedOptionError, match="kind must be 'box' or 'point'"):
        to_original_coords([0, 0], (10, 10), (20, 20), kind="polygon")


def test_errors_are_vlfast_value_errors():
    assert issubclass(InvalidCoordinatesError, VlfastError) and issubclass(InvalidCoordinatesError, ValueError)


# --- containers ----------------------------------------------------------------------------------------------


def test_containers_are_preserved():
    original, model = (100, 100), (200, 300)
    assert to_model_coords((1, 2, 3, 4), original, model) == [3.0, 4.0, 9.0, 8.0]
    assert to_model_coords(np.array([1, 2, 3, 4]), original, model).dtype == np.float64
    float32 = to_model_coords(np.array([1, 2, 3, 4], np.float32), original, model)
    assert float32.dtype == np.float32 and float32.tolist() == [3.0, 4.0, 9.0, 8.0]
    ints = to_model_coords(torch.tensor([[1, 2, 3, 4]]), original, model)
    assert ints.dtype == torch.get_default_dtype() and ints.tolist() == [[3.0, 4.0, 9.0, 8.0]]
    doubles = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert to_model_coords(doubles, original, model).dtype == torch.float64
    assert to_model_coords(np.zeros((0, 4)), original, model).shape == (0, 4)
    assert to_model_coords(np.zeros((2, 3, 5, 2)), original, model, kind="point").shape == (2, 3, 5, 2)


def test_sizes_may_be_tensors_and_arrays():
    expected = to_model_coords([1, 2, 3, 4], (100, 100), (200, 300))
    assert to_model_coords([1, 2, 3, 4], torch.tensor([100, 100]), np.array([200, 300])) == expected


# --- batches ----------------------------------------------------------------------------------------------------


def test_batch_with_a_different_scale_per_image():
    originals = [(1080, 1920), (300, 451), (37, 53)]
    models = [smart_resize(*size, max_pixels=QWEN25_MAX_PIXELS) for size in originals]
    rng = np.random.default_rng(3)
    boxes = np.stack([random_boxes(rng, size, 7) for size in originals])  # (3, 7, 4)
    expected = np.stack([to_model_coords(b, o, m) for b, o, m in zip(boxes, originals, models, strict=True)])
    np.testing.assert_array_equal(to_model_coords(boxes, originals, models), expected)
    tensor = to_model_coords(torch.from_numpy(boxes), originals, torch.tensor(models))
    np.testing.assert_allclose(tensor.numpy(), expected)
    np.testing.assert_allclose(to_original_coords(expected, originals, models), boxes, atol=1e-9)


def test_ragged_batches_as_lists():
    originals = [(100, 100), (50, 200), (10, 10)]
    models = [(200, 200), (100, 100), (28, 28)]
    boxes = [[[0, 0, 10, 10], [50, 50, 100, 100]], [[10, 10, 20, 20]], []]
    assert to_model_coords(boxes, originals, models) == [
        [[0.0, 0.0, 20.0, 20.0], [100.0, 100.0, 200.0, 200.0]],
        [[5.0, 20.0, 10.0, 40.0]],
        [],
    ]
    points = [[1, 1], [[2, 2], [3, 3]], np.array([[5.0, 5.0]])]
    mapped = to_model_coords(points, originals, models, kind="point")
    assert mapped[0] == [2.0, 2.0] and mapped[1] == [[1.0, 4.0], [1.5, 6.0]]
    np.testing.assert_array_equal(mapped[2], [[14.0, 14.0]])


def test_a_single_size_is_broadcast_over_a_batch():
    boxes = np.array([[[0, 0, 10, 10]], [[5, 5, 10, 10]]])
    mapped = to_model_coords(boxes, [(100, 100), (50, 50)], (200, 200))
    np.testing.assert_array_equal(mapped, [[[0, 0, 20, 20]], [[20, 20, 40, 40]]])


def test_batch_shape_mismatches():
    with pytest.raises(InvalidCoordinatesError, match="need a leading axis of 2 images, got shape \\(3, 4\\)"):
        to_model_coords(np.zeros((3, 4)), [(10, 10), (20, 20)], [(28, 28), (28, 28)])
    with pytest.raises(InvalidCoordinatesError, match="need a leading axis of 2 images, got shape \\(4,\\)"):
        to_model_coords(np.zeros(4), [(10, 10), (20, 20)], [(28, 28), (28, 28)])
    with pytest.raises(InvalidCoordinatesError, match="one entry per image, got 1"):
        to_model_coords([[0, 0, 1, 1]], [(10, 10), (20, 20)], [(28, 28), (28, 28)])


# --- image_grid_thw -------------------------------------------------------------------------------------------


def test_model_sizes_from_grid():
    assert model_sizes_from_grid(torch.tensor([[1, 78, 138], [1, 36, 36]])) == [(1092, 1932), (504, 504)]
    assert model_sizes_from_grid([1, 78, 138]) == (1092, 1932)
    assert model_sizes_from_grid(np.array([[2, 4, 6]]), patch_size=16) == [(64, 96)]
    with pytest.raises(InvalidCoordinatesError, match="shape \\(3,\\) or \\(N, 3\\)"):
        model_sizes_from_grid([78, 138])
    with pytest.raises(InvalidCoordinatesError, match="positive integers"):
        model_sizes_from_grid([1, 0, 4])
    with pytest.raises(UnsupportedOptionError, match="patch_size"):
        model_sizes_from_grid([1, 2, 4], patch_size=0)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_grid_from_the_stock_processor_gives_the_resized_sizes(backend):
    from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

    processor = (Qwen2VLImageProcessor if backend == "torchvision" else Qwen2VLImageProcessorPil)(
        max_pixels=QWEN25_MAX_PIXELS
    )
    images = [np.zeros((*size, 3), np.uint8) for size in [(300, 451), (37, 53), (1080, 1920)]]
    grid = processor(images=images, return_tensors="pt")["image_grid_thw"]
    sizes = model_sizes_from_grid(grid)
    assert sizes == [smart_resize(*image.shape[:2], max_pixels=QWEN25_MAX_PIXELS) for image in images]
    boxes = np.array([[[10, 10, 100, 100]]] * 3)
    np.testing.assert_allclose(
        to_model_coords(boxes, [image.shape[:2] for image in images], sizes),
        [to_model_coords(box, image.shape[:2], size) for box, image, size in zip(boxes, images, sizes, strict=True)],
    )


def test_grid_from_vlfast_preprocess_matches_resized_sizes():
    pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    import vlfast

    images = [np.zeros((*size, 3), np.uint8) for size in [(300, 451), (37, 53)]]
    out = vlfast.preprocess(images)
    assert model_sizes_from_grid(out.image_grid_thw, PATCH_SIZE) == out.resized_sizes


# --- Qwen2-VL relative coordinates -----------------------------------------------------------------------------


def test_relative_1000():
    size = (1080, 1920)
    assert to_relative_1000([0, 0, 1920, 1080], size) == [0.0, 0.0, 1000.0, 1000.0]
    assert from_relative_1000([250, 250, 500, 500], size) == [480.0, 270.0, 960.0, 540.0]
    assert to_relative_1000([[960, 540]], size, kind="point") == [[500.0, 500.0]]
    assert from_relative_1000([0, 0, 1200, 500], size) == [0.0, 0.0, 1920.0, 540.0]  # clamped
    boxes = random_boxes(np.random.default_rng(4), size, 100)
    np.testing.assert_allclose(from_relative_1000(to_relative_1000(boxes, size), size), boxes, atol=1e-9)
    # Qwen2-VL prints integers: at most half a thousandth of the side away.
    printed = np.round(to_relative_1000(boxes, size))
    assert (np.abs(from_relative_1000(printed, size) - boxes) <= np.array([1.92, 1.08] * 2) / 2 + 1e-9).all()


def test_relative_1000_per_image():
    mapped = from_relative_1000(np.array([[500, 500], [1000, 0]]), [(100, 200), (10, 20)], kind="point")
    np.testing.assert_array_equal(mapped, [[100, 50], [20, 0]])


# --- the README's grounding example ----------------------------------------------------------------------------


def test_grounding_example():
    """Qwen2.5-VL answers in the pixels of the image it was fed; map its box back onto the photo."""
    original = (3024, 4032)  # a 12 MP phone photo, (height, width)
    model = smart_resize(*original)  # the processor's default max_pixels
    assert model == (840, 1148)
    answer = {"bbox_2d": [285, 208, 569, 417], "label": "cat"}
    on_photo = to_original_coords(answer["bbox_2d"], original, model)
    np.testing.assert_allclose(on_photo, [1000.98, 748.8, 1998.44, 1501.2], atol=0.01)
    # And the other way, to point the model at a region of the photo:
    assert np.round(to_model_coords([1000, 750, 2000, 1500], original, model)).tolist() == [285, 208, 569, 417]
