"""vlfast.preprocess (C++ engine) is bit-identical to the stock transformers processors.

Every comparison is ``torch.equal`` against the installed ``Qwen2VLImageProcessor`` (torchvision
backend, CPU) or ``Qwen2VLImageProcessorPil`` run on the same input.
"""

import random

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast import releases
from vlfast.errors import UnsupportedModeError, VlfastError
from vlfast.plans import Filter

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
CLASS_DEFAULTS: dict = {}
QWEN25_VL = {"min_pixels": 3136, "max_pixels": 12845056}
CONFIGS = {"class-defaults": CLASS_DEFAULTS, "qwen2.5-vl": QWEN25_VL}
FILTERS = {
    "torchvision": [Filter.BILINEAR, Filter.BICUBIC, Filter.LANCZOS],
    "pil": [Filter.NEAREST, Filter.BOX, Filter.BILINEAR, Filter.HAMMING, Filter.BICUBIC, Filter.LANCZOS],
}
PIL_CODES = {
    Filter.NEAREST: Image.Resampling.NEAREST,
    Filter.BOX: Image.Resampling.BOX,
    Filter.BILINEAR: Image.Resampling.BILINEAR,
    Filter.HAMMING: Image.Resampling.HAMMING,
    Filter.BICUBIC: Image.Resampling.BICUBIC,
    Filter.LANCZOS: Image.Resampling.LANCZOS,
}

_stock_cache: dict = {}


def stock_processor(backend: str, **config):
    key = (backend, repr(sorted(config.items())))
    if key not in _stock_cache:
        _stock_cache[key] = STOCK[backend](**config)
    return _stock_cache[key]


def _unconverted_array(image) -> bool:
    """A 1- or 4-channel array (the first axis wins, as in transformers), which transformers converts to
    RGB only from 5.21 on."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        return False
    channels = 1 if image.ndim == 2 else image.shape[0] if image.shape[0] in (1, 3, 4) else image.shape[-1]
    return channels != 3


def assert_exact(images, backend, config, resample=Filter.BICUBIC, dtypes=(torch.float32,)):
    """vlfast equals the stock bit for bit; where the stock fails, or where vlfast refuses an input the
    installed release does not convert (see vlfast.releases), a typed error instead of other numbers."""
    stock_config = dict(config)
    if resample is not Filter.BICUBIC:
        stock_config["resample"] = PIL_CODES[resample]
    options = {"backend": backend, "resample": resample, "engine": "cpp", **config}
    try:
        expected = stock_processor(backend, **stock_config)(images=images, return_tensors="pt")
    # This release's stock cannot process the input. RuntimeError: a release that leaves a 1-channel array as it
    # is (before 5.21) normalizes it in place with 3 channels' statistics (seen with transformers 5.20.2).
    except (ValueError, RuntimeError):
        with pytest.raises(VlfastError):
            vlfast.preprocess(images, **options)
        return
    if not releases.rgb_conversion_composites() and any(_unconverted_array(image) for image in images):
        with pytest.raises(UnsupportedModeError, match="does not convert"):
            vlfast.preprocess(images, **options)
        return
    for dtype in dtypes:
        got = vlfast.preprocess(images, dtype=dtype, **options)
        assert got.pixel_values.dtype == dtype
        assert torch.equal(got.image_grid_thw, expected["image_grid_thw"])
        assert got.image_grid_thw.dtype == torch.int64
        assert torch.equal(got.pixel_values, expected["pixel_values"].to(dtype)), (backend, dtype, config)


def real_photos():
    return {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "hubble": data.hubble_deep_field(),
        "camera-L": Image.fromarray(data.camera()),
        "coins-L": Image.fromarray(data.coins()),
        "page-gray-hw1": data.page()[:, :, None],
        "logo-RGBA-array": data.logo(),
        "logo-RGBA-pil": Image.fromarray(data.logo()),
        "chelsea-CHW-tensor": torch.from_numpy(data.chelsea()).permute(2, 0, 1).contiguous(),
        "rocket-HWC-tensor-strided": torch.from_numpy(data.rocket())[::2, 1::3],
    }


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("name", list(real_photos()))
def test_real_photos(name, backend, config):
    image = real_photos()[name]
    assert_exact([image], backend, config, dtypes=(torch.float32, torch.bfloat16, torch.float16))


def synthetic_images():
    rng = np.random.default_rng(7)
    yy, xx = np.indices((181, 263))
    board = ((yy // 4 + xx // 4) % 2 * 255).astype(np.uint8)
    alpha = rng.integers(0, 256, (97, 133, 1), dtype=np.uint8)
    rgba = np.concatenate([rng.integers(0, 256, (97, 133, 3), dtype=np.uint8), alpha], axis=-1)
    palette = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).convert("P")
    palette.info["transparency"] = 3
    return {
        "noise": rng.integers(0, 256, (211, 307, 3), dtype=np.uint8),
        "edges": np.stack([board, 255 - board, board], axis=-1),
        "gradient": np.stack([yy % 256, xx % 256, (yy + xx) % 256], axis=-1).astype(np.uint8),
        "constant-0": np.zeros((120, 77, 3), np.uint8),
        "constant-255": np.full((64, 300, 3), 255, np.uint8),
        "single-pixel-lines": np.repeat((np.arange(140) % 2 * 255).astype(np.uint8)[:, None, None], 3, axis=2).repeat(
            90, axis=1
        ),
        "alpha-array": rgba,
        "alpha-pil-RGBA": Image.fromarray(rgba),
        "alpha-pil-LA": Image.fromarray(rgba[..., [0, 3]], mode="LA"),
        "palette-transparency": palette,
        "cmyk": Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).convert("CMYK"),
    }


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("name", list(synthetic_images()))
def test_synthetic_worst_cases(name, backend, config):
    assert_exact([synthetic_images()[name]], backend, config, dtypes=(torch.float32, torch.bfloat16))


def random_size_cases(count: int = 220, seed: int = 2024):
    """Sizes spread over the interesting regimes of smart_resize and the resample passes."""
    rng = random.Random(seed)
    cases = []
    regimes = ["upscale", "downscale", "one-axis", "unchanged", "tiny", "aspect-200", "mixed"]
    for index in range(count):
        regime = regimes[index % len(regimes)]
        if regime == "upscale":  # rounding up to the next multiple of 28
            height, width = 28 * rng.randint(1, 12) - rng.randint(1, 13), 28 * rng.randint(1, 12) - rng.randint(1, 13)
        elif regime == "downscale":
            height, width = 28 * rng.randint(1, 12) + rng.randint(1, 13), 28 * rng.randint(1, 12) + rng.randint(1, 13)
        elif regime == "one-axis":
            height, width = 28 * rng.randint(2, 12), rng.randint(20, 400)
            if rng.random() < 0.5:
                height, width = width, height
        elif regime == "unchanged":
            height, width = 28 * rng.randint(2, 14), 28 * rng.randint(2, 14)
        elif regime == "tiny":  # forced up by min_pixels
            height, width = rng.randint(1, 40), rng.randint(1, 40)
            if max(height, width) / min(height, width) > 200:
                height = width
        elif regime == "aspect-200":
            short = rng.randint(1, 4)
            height, width = short, short * rng.randint(150, 200)
            if rng.random() < 0.5:
                height, width = width, height
        else:
            height, width = rng.randint(1, 500), rng.randint(1, 500)
            if max(height, width) / min(height, width) > 200:
                width = height
        cases.append((height, width))
    return cases


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_random_sizes(backend, config):
    rng = np.random.default_rng(11)
    cases = random_size_cases()
    assert len(cases) >= 200
    for height, width in cases:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if height in (1, 3, 4):  # an (h, w, 3) array with h in (1, 3, 4) reads as channels-first: pass PIL
            image = Image.fromarray(image)
        assert_exact([image], backend, config, dtypes=(torch.float32, torch.bfloat16))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_huge_images_forced_down_by_max_pixels(backend):
    rng = np.random.default_rng(5)
    huge = np.repeat(np.repeat(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), 8, axis=0), 8, axis=1)
    assert_exact([huge], backend, CLASS_DEFAULTS)  # 2400 x 3200 -> ~1 MP
    assert_exact([huge[:1300, :2100]], backend, {"min_pixels": 3136, "max_pixels": 200_000})


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_each_resample_filter(backend, config):
    rng = np.random.default_rng(3)
    sizes = [(37, 91), (300, 28), (56, 56), (500, 311), (13, 250), (129, 64), (222, 444)]
    for resample in FILTERS[backend]:
        for height, width in sizes:
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            assert_exact([image], backend, config, resample=resample, dtypes=(torch.float32, torch.bfloat16))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_batch_is_the_concatenation_of_single_results(backend):
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(37, 91), (512, 300), (56, 56), (90, 17)]]
    images.append(data.astronaut())
    batch = vlfast.preprocess(images, backend=backend, **QWEN25_VL)
    singles = [vlfast.preprocess(image, backend=backend, **QWEN25_VL) for image in images]
    assert torch.equal(batch.pixel_values, torch.cat([s.pixel_values for s in singles]))
    assert torch.equal(batch.image_grid_thw, torch.cat([s.image_grid_thw for s in singles]))
    assert_exact(images, backend, QWEN25_VL)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_batch_of_small_images(backend, config):
    """Images too small to split over threads run side by side in the C++ engine, a whole image per thread: a
    batch of them, resized and not, of different sizes, with one large enough to split among them."""
    rng = np.random.default_rng(12)
    sizes = [(224, 224), (37, 91), (200, 150), (56, 56), (90, 17), (120, 250), (28, 28), (160, 90), (64, 300)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    images.insert(4, data.astronaut())
    assert_exact(images, backend, config, dtypes=(torch.float32, torch.bfloat16))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_options_other_than_the_defaults(backend):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (123, 201, 3), dtype=np.uint8)
    for options in [
        {"patch_size": 16, "merge_size": 2},
        {"patch_size": 14, "merge_size": 1, "temporal_patch_size": 3},
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        {"do_normalize": False},
        {"do_rescale": False},
        {"do_rescale": False, "do_normalize": False},
    ]:
        expected = stock_processor(backend, **options)(images=[image], return_tensors="pt")
        got = vlfast.preprocess(image, backend=backend, **options)
        assert got.pixel_values.dtype == expected["pixel_values"].dtype
        assert torch.equal(got.pixel_values, expected["pixel_values"]), options
        assert torch.equal(got.image_grid_thw, expected["image_grid_thw"])


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_real_photos_at_every_simd_level(backend):
    """The photos against the stock at each SIMD level this CPU has, not only its highest (which the tests
    above run): CPUs without AVX-512 run the avx2 kernels, whose horizontal pass gathers these widths."""
    from vlfast import _C
    from vlfast.engines import cpp
    from vlfast.plans import Backend, axis_plan
    from vlfast.sizing import smart_resize

    photos = {name: real_photos()[name] for name in ("astronaut", "chelsea", "coffee", "rocket")}
    for level in cpp.simd_levels():
        gathered = 0
        with cpp.capped_simd_level(level):
            for image in photos.values():
                height, width = image.shape[:2]
                _, out_width = smart_resize(height, width, **QWEN25_VL)
                plan = axis_plan(width, out_width, Filter.BICUBIC, Backend(backend))
                gathered += _C.horizontal_gather_window(cpp.axis_arguments(plan), 3) > 0
                assert_exact([image], backend, QWEN25_VL, dtypes=(torch.float32, torch.bfloat16, torch.float16))
        assert (gathered > 0) == (level != "portable"), (level, gathered)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_real_photos_brought_far_down_equal_the_stock(backend):
    """The photos at a max_pixels that takes each about 3.3x down, as serving settings take larger images
    (the AVX-512 horizontal pass gathers those from 128-byte windows, the other levels transpose), against
    the stock at each SIMD level, every float dtype; RGBA and grey too."""
    from vlfast import _C
    from vlfast.engines import cpp
    from vlfast.plans import Backend, axis_plan
    from vlfast.sizing import smart_resize

    photos = real_photos()
    images = [photos[name] for name in ("astronaut", "hubble", "coffee", "rocket", "coins-L", "logo-RGBA-array")]
    for level in cpp.simd_levels():
        windows = set()
        with cpp.capped_simd_level(level):
            for image in images:
                pixels = np.asarray(image)  # coins-L is a PIL image
                height, width = pixels.shape[:2]
                config = {"min_pixels": 3136, "max_pixels": height * width // 11}
                _, out_width = smart_resize(height, width, **config)
                assert 2.6 <= width / out_width <= 4.2, (image.shape, out_width)
                plan = axis_plan(width, out_width, Filter.BICUBIC, Backend(backend))
                channels = pixels.shape[2] if pixels.ndim == 3 else 1
                windows.add(_C.horizontal_gather_window(cpp.axis_arguments(plan), channels))
                assert_exact([image], backend, config, dtypes=(torch.float32, torch.bfloat16, torch.float16))
        assert 128 in windows if level == "avx512" else windows == {0}, (level, windows)


@pytest.mark.parametrize("level", ["avx2", "avx512"])
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_items_computed_at_x86_levels_equal_the_stock(backend, level):
    """At the avx2 and avx512 levels the C++ engine computes float items with the table's formula, or for 2-byte items
    affine (each form checked against the table): real photos (grey, RGBA), odd sizes and settings other than
    the defaults, every float dtype, against the stock; each of these tables is computed there, not looked
    up, and both forms are among them. A rescale of 3 makes 87 a bfloat16 tie (261: the affine form's ties
    away from zero would give 262, the stock's ties to even 260), so its bfloat16 table keeps the formula."""
    from vlfast import _C
    from vlfast.engines import cpp
    from vlfast.tables import normalization_table, table_formula

    if level not in cpp.simd_levels():
        pytest.skip(f"this CPU has no {level}")
    photos = real_photos()
    images = [photos["coffee"], photos["coins-L"], photos["logo-RGBA-array"]]
    images.append(np.random.default_rng(9).integers(0, 256, (97, 333, 3), dtype=np.uint8))
    dtypes = (torch.float32, torch.bfloat16, torch.float16)
    forms: dict[torch.dtype, set[str]] = {}
    with cpp.capped_simd_level(level):
        for options in [
            {},
            {"image_mean": [0.5, 0.25, 0.75], "image_std": [0.2, 0.5, 0.3]},
            {"do_normalize": False},
            {"do_rescale": False},
            {"rescale_factor": 1 / 127.5},
            {"rescale_factor": 3.0, "do_normalize": False},
        ]:
            for dtype in dtypes:
                table = normalization_table(backend, dtype=dtype, **options)
                formula = cpp.formula_arguments(table_formula(backend, **options))
                form = _C.computes_items(cpp._numpy_bits(table, "table"), formula)
                assert form is not None, (options, dtype)
                forms.setdefault(dtype, set()).add(form)
            for image in images:
                assert_exact([image], backend, {**QWEN25_VL, **options}, dtypes=dtypes)
    # The defaults' 2-byte tables are affine, the tie's bfloat16 one is not; float32 is affine only where no
    # normalization divides (v * 3 is exact), else the division, as the stock rounds it.
    assert forms[torch.bfloat16] == {"affine", "formula"} and "affine" in forms[torch.float16]
    assert forms[torch.float32] == {"affine", "formula"}


def test_grids_are_tensors_of_their_own_as_the_stocks():
    """``image_grid_thw`` equals the stock torchvision processor's and, like it, owns resizable storage."""
    image = np.zeros((56, 84, 3), np.uint8)
    ours = vlfast.preprocess(image).image_grid_thw
    stock = Qwen2VLImageProcessor()(image, return_tensors="pt")["image_grid_thw"]
    assert torch.equal(ours, stock) and ours.dtype == stock.dtype == torch.int64
    for grid in (ours, stock):
        grid.resize_(2, 3)  # a tensor viewing a NumPy array refuses: "storage that is not resizable"
    assert ours.shape == stock.shape == (2, 3) and torch.equal(ours[0], stock[0])
