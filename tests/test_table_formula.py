"""Items computed with a table's formula (``vlfast.tables.TableFormula``) instead of looked up: the kernel of
the ``avx2`` and ``avx512`` levels. The formulas must describe the tables the library builds (every entry's bits, or the
kernel falls back to the lookup and the speed is gone silently), a formula that misses one entry must not
be used, and computed items must be the looked-up ones bit for bit, tails of rows included."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from simd_levels import simd_level

from vlfast import preprocess
from vlfast.engines import cpp as cpu_kernel
from vlfast.errors import InvalidImageError, UnsupportedOptionError
from vlfast.plans import Backend, Filter, ResamplePlan, resample_plan
from vlfast.tables import TableFormula, normalization_table, table_formula

if not cpu_kernel.available():
    pytest.skip("the C++ extension vlfast._C is not built", allow_module_level=True)

from vlfast import _C  # noqa: E402

LAYOUT = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
#: Settings of the model families and a few others: (rescale_factor, mean, std).
SETTINGS = [
    (1 / 255, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),  # CLIP (Qwen, GLM)
    (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet
    (1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    (1 / 127.5, (1.0, 0.25, 0.125), (0.75, 2.0, 0.3)),
    (0.5, (17.0, 3.0, 250.0), (13.0, 0.1, 7.0)),
]
COMPUTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@pytest.fixture(params=["avx2", "avx512"])
def level(request) -> str:
    """A level that computes items (both with the AVX2 formula kernel; avx512 looks up the others with VBMI)."""
    return request.param


def bits(table: torch.Tensor) -> np.ndarray:
    return cpu_kernel._numpy_bits(table, "table")


def settings(index: int, channels: int, do_rescale: bool, do_normalize: bool) -> dict:
    factor, mean, std = SETTINGS[index]
    extra = (0.3,) if channels == 4 else ()
    return {
        "do_rescale": do_rescale,
        "rescale_factor": factor,
        "do_normalize": do_normalize,
        "image_mean": (mean + extra)[:channels],
        "image_std": (std + extra)[:channels],
        "channels": channels,
    }


def computes(table: torch.Tensor, formula: TableFormula) -> str | None:
    """How the kernel makes the table's items: None (looked up), "formula" or "affine" (computed)."""
    return _C.computes_items(bits(table), cpu_kernel.formula_arguments(formula))


@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_two_byte_items_of_common_settings_are_computed_affine(backend, level):
    """bfloat16 and float16 items of the model families' and other common settings (the first four of
    SETTINGS) take the affine form at ``level``, one multiply and one add an item, since it gives every
    entry; float32 ones, which it does not give, the formula's division."""
    with simd_level(level):
        for index, channels in itertools.product(range(4), (1, 3, 4)):
            options = settings(index, channels, True, True)
            for dtype, form in ((torch.bfloat16, "affine"), (torch.float16, "affine"), (torch.float32, "formula")):
                table = normalization_table(backend, dtype=dtype, **options)
                assert computes(table, table_formula(backend, **options)) == form, (index, channels, dtype)


@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_the_affine_form_is_not_used_where_it_rounds_a_tie_otherwise(backend, level):
    """A rescale of 3 without normalization puts value 87 at 261, halfway between the bfloat16 neighbours
    260 and 262: the table rounds it to even (260), the affine form's bfloat16 rounding (ties away from
    zero) would give 262, so that table is computed with the formula, and every item is the table's."""
    options = {"rescale_factor": 3.0, "do_normalize": False}
    table = normalization_table(backend, dtype=torch.bfloat16, **options)
    assert table[0, 87].item() == 260.0
    image = np.tile(np.arange(256, dtype=np.uint8), (56, 2))[:, :168, None].repeat(3, axis=2)
    plan = ResamplePlan(56, 168, 56, 168, None, None, False)
    with simd_level(level):
        formula = table_formula(backend, **options)
        assert computes(table, formula) == "formula"
        computed = _run(image, plan, table, formula)
        assert torch.equal(computed.view(torch.int16), _run(image, plan, table, None).view(torch.int16))
        assert (computed == 260.0).any() and not (computed == 262.0).any()
        assert computes(normalization_table(backend, dtype=torch.float16, **options), formula) == "affine"


@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_formulas_give_every_entry_of_the_library_tables(backend, level):
    """At ``avx2`` and ``avx512`` every float table the library builds is computed; never at ``portable``."""
    with simd_level(level):
        for index, channels, do_rescale, do_normalize, dtype in itertools.product(
            range(len(SETTINGS)), (1, 3, 4), (True, False), (True, False), COMPUTED_DTYPES
        ):
            options = settings(index, channels, do_rescale, do_normalize)
            table = normalization_table(backend, dtype=dtype, **options)
            assert computes(table, table_formula(backend, **options)), (index, options, dtype)
    with simd_level("portable"):
        options = settings(0, 3, True, True)
        assert not computes(normalization_table(backend, **options), table_formula(backend, **options))


def _nudged(formula: TableFormula, field: str, channel: int) -> TableFormula:
    values = list(getattr(formula, field))
    values[channel] = float(np.nextafter(np.float32(values[channel]), np.float32(np.inf)))
    return TableFormula(
        formula.scale, formula.scale_in_float64, **{"mean": formula.mean, "std": formula.std, field: tuple(values)}
    )


def _wrong_formulas(backend: Backend) -> list[TableFormula]:
    formula = table_formula(backend)
    wrong = [_nudged(formula, "mean", 1), _nudged(formula, "std", 2)]
    wrong.append(TableFormula(formula.scale, formula.scale_in_float64, formula.mean[::-1], formula.std))
    if backend is Backend.PIL:  # the rescale in float32 instead of float64: 126 of 256 values differ
        wrong.append(TableFormula(formula.scale, False, formula.mean, formula.std))
    return wrong


def _frame(width: int, height: int, out_width: int, out_height: int, channels: int, seed: int):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    image[::7] = 255 * (image[::7] > 127)
    if (width, height) == (out_width, out_height):
        return image, ResamplePlan(height, width, height, width, None, None, False)
    return image, resample_plan(height, width, out_height, out_width, Filter.BICUBIC, Backend.TORCHVISION)


def _run(image, plan, table, formula, threads=1, slot_begin=0, slot_count=None) -> torch.Tensor:
    rows = (plan.out_height // 14) * (plan.out_width // 14)
    out = torch.full((rows, table.shape[0] * 2 * 196), 7, dtype=table.dtype)
    cpu_kernel.run_frame(
        image,
        plan,
        table,
        out,
        0,
        num_threads=threads,
        formula=formula,
        slot_begin=slot_begin,
        slot_count=slot_count,
        **LAYOUT,
    )
    return out


@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_a_formula_that_misses_an_entry_is_not_used(backend, level):
    """A mean or std one float32 step off, channels swapped, the wrong rescale precision, a uint8 table: not
    computed, and the frame gets the table's bits all the same."""
    image, plan = _frame(84, 56, 84, 56, 3, 0)
    with simd_level(level):
        table = normalization_table(backend)
        expected = _run(image, plan, table, None)
        for formula in _wrong_formulas(backend):
            assert not computes(table, formula), formula
            assert torch.equal(_run(image, plan, table, formula), expected)
        other = normalization_table(backend, dtype=torch.uint8)
        assert not computes(other, table_formula(backend))
        assert torch.equal(_run(image, plan, other, table_formula(backend)), _run(image, plan, other, None))
        # 2-byte tables: a float32 step rarely moves a rounded item (a formula that gives every entry is a right
        # one, and is used), but channels swapped do.
        swapped = _wrong_formulas(backend)[2]
        for dtype in (torch.bfloat16, torch.float16):
            two_byte = normalization_table(backend, dtype=dtype)
            assert computes(two_byte, table_formula(backend)) and not computes(two_byte, swapped), dtype
            assert torch.equal(_run(image, plan, two_byte, swapped), _run(image, plan, two_byte, None))


# Unresized frames of widths that leave 4, 0 and 4 items past the last 8 (28, 56, 84, 140 wide: tails
# of the row and of each chunk), and resized ones; 1, 3 and 4 channels.
FRAMES = [
    (28, 28, 28, 28),
    (56, 84, 56, 84),
    (84, 28, 84, 28),
    (140, 56, 140, 56),
    (97, 61, 84, 56),
    (1932, 60, 1932, 56),
    (300, 200, 252, 168),
]


@pytest.mark.parametrize("dtype", COMPUTED_DTYPES, ids=str)
@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_computed_items_are_the_looked_up_ones(backend, dtype, level):
    """The same bytes with the formula as without it, where it is computed: every frame shape, channel
    count, thread count and temporal slot range, with settings other than the defaults."""
    forms = set()
    with simd_level(level):
        for case, (frame, channels) in enumerate(itertools.product(FRAMES, (1, 3, 4))):
            options = settings(case % len(SETTINGS), channels, True, True)
            table = normalization_table(backend, dtype=dtype, **options)
            formula = table_formula(backend, **options)
            forms.add(computes(table, formula))
            image, plan = _frame(*frame, channels, case)
            threads, slot_begin = 1 + case % 2, case % 3 % 2
            slot_count = None if case % 3 < 2 else 1
            computed = _run(image, plan, table, formula, threads, slot_begin, slot_count)
            looked_up = _run(image, plan, table, None, threads, slot_begin, slot_count)
            assert torch.equal(computed.view(torch.uint8), looked_up.view(torch.uint8)), (frame, channels)
    # Every table computed; 2-byte ones in both forms (the last of SETTINGS is not affine).
    assert forms == ({"formula"} if dtype == torch.float32 else {"affine", "formula"})


@pytest.mark.parametrize("dtype", COMPUTED_DTYPES, ids=str)
@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_computed_items_are_the_looked_up_ones_at_any_patch_size(backend, dtype, level):
    """Runs shorter than 8 items, of 8, of 9 to 16 (bfloat16: 16 a time, stores past the run), and longer;
    merge sizes 1 and 2, one to three temporal slots (one filled, or all), 1 and 3 channels."""
    forms = set()
    with simd_level(level):
        for case, (patch, merge, temporal, channels) in enumerate(
            itertools.product((2, 7, 8, 9, 14, 15, 16, 17, 28), (1, 2), (1, 2, 3), (1, 3))
        ):
            options = settings(case % len(SETTINGS), channels, True, True)
            table = normalization_table(backend, dtype=dtype, **options)
            formula = table_formula(backend, **options)
            forms.add(computes(table, formula))
            block = patch * merge
            image, plan = _frame(3 * block + case % 5, 2 * block, 3 * block, 2 * block, channels, case)
            rows = plan.out_height * plan.out_width // patch**2
            outs = []
            for given in (formula, None):
                out = torch.full((rows, channels * temporal * patch**2), 7, dtype=dtype)
                slots = {"slot_begin": temporal - 1, "slot_count": 1} if case % 2 else {}
                cpu_kernel.run_frame(
                    image,
                    plan,
                    table,
                    out,
                    0,
                    num_threads=1 + case % 2,
                    formula=given,
                    patch_size=patch,
                    merge_size=merge,
                    temporal_patch_size=temporal,
                    **slots,
                )
                outs.append(out.view(torch.uint8) if dtype == torch.float32 else out.view(torch.int16))
            assert torch.equal(outs[0], outs[1]), (patch, merge, temporal, channels)
    assert forms == ({"formula"} if dtype == torch.float32 else {"affine", "formula"})


#: The start of the scripts below, run in a process of their own (a rounding mode or a trap set there stays
#: there): the avx2 level, the C math library, and run(table, formula, threads), one unresized 560x560 frame's
#: items as int16 or int32 bits. Exit code 3: no avx2; 4: no C math library; 5: no feenableexcept.
MODE_SCRIPT = """
import ctypes, ctypes.util, sys
import numpy as np, torch
from vlfast.engines import cpp as cpu_kernel
from vlfast.plans import ResamplePlan
from vlfast.tables import _torchvision_table, normalization_table, table_formula
from vlfast import _C
if "avx2" not in _C.simd_levels():
    sys.exit(3)
_C.set_simd_level("avx2")
libm = ctypes.CDLL(ctypes.util.find_library("m") or sys.exit(4))
NEAREST, DOWNWARD, UPWARD, TOWARD_ZERO, DIVBYZERO = 0x0000, 0x0400, 0x0800, 0x0C00, 0x04  # x86 <fenv.h>
image = np.random.default_rng(0).integers(0, 256, (560, 560, 3), dtype=np.uint8)
plan = ResamplePlan(560, 560, 560, 560, None, None, False)
layout = dict(patch_size=14, merge_size=2, temporal_patch_size=2)
def run(table, formula, threads=1):
    out = torch.zeros((1600, 3 * 2 * 196), dtype=table.dtype)
    cpu_kernel.run_frame(image, plan, table, out, 0, num_threads=threads, formula=formula, **layout)
    return out.view(torch.int32 if table.dtype == torch.float32 else torch.int16)
"""


def run_mode_script(body: str) -> None:
    """MODE_SCRIPT, then ``body``, in a fresh interpreter: passes, skips or fails as it exits."""
    result = subprocess.run(
        [sys.executable, "-c", MODE_SCRIPT + textwrap.dedent(body)], capture_output=True, text=True, timeout=120
    )
    reasons = {3: "this CPU has no avx2", 4: "no C math library to set the mode with", 5: "no feenableexcept"}
    if result.returncode in reasons:
        pytest.skip(reasons[result.returncode])
    assert result.returncode == 0, (result.returncode, result.stderr)


def test_the_callers_rounding_mode_changes_nothing():
    """A caller that set another rounding mode (``fesetround``, per thread) before building its table gets
    the table's bits from every thread: the kernel computes and checks the formula under the default mode,
    so a table built under another mode is looked up, and the caller's mode is left as it was."""
    run_mode_script(
        """
        mean, std = (0.3, 0.4, 0.5), (0.21, 0.22, 0.23)
        nearest = _torchvision_table(True, 1 / 255, True, mean, std, 3).contiguous()
        run(nearest, None, 2)  # the pool's workers start under the default mode
        assert libm.fesetround(TOWARD_ZERO) == 0
        table = _torchvision_table(True, 1 / 255, True, mean, std, 3).contiguous()
        assert not torch.equal(table, nearest), "the mode changed no entry: the test shows nothing"
        formula = table_formula("torchvision", image_mean=mean, image_std=std)
        assert torch.equal(run(table, formula, 2), run(table, None, 2))
        assert libm.fegetround() == TOWARD_ZERO  # the x87 control word (glibc reads only that one)
        third = np.float32(1) / np.float32(3)  # an SSE division: rounded as MXCSR says
        assert third.view(np.uint32) == 0x3EAAAAAA, "MXCSR not restored (to nearest: 0x3EAAAAAB)"
        """
    )


def test_a_table_checked_before_the_caller_changed_its_mode_stays_exact():
    """A table and formula checked under the default mode, used again once the caller set another rounding
    mode: the remembered check holds for the constants it checked (the affine form's, folded under the
    default mode), not for ones folded anew under the caller's; and the folding, with the caller's traps on
    (a std of 0 divides by zero), raises no floating-point exception."""
    run_mode_script(
        """
        for backend in ("torchvision", "pil"):
            formula = table_formula(backend)
            for dtype in (torch.bfloat16, torch.float16):
                table = normalization_table(backend, dtype=dtype)
                bits = cpu_kernel._numpy_bits(table, "table")
                assert _C.computes_items(bits, cpu_kernel.formula_arguments(formula)) == "affine"
                expected = run(table, None)
                for mode in (DOWNWARD, UPWARD):
                    assert libm.fesetround(NEAREST) == 0
                    assert torch.equal(run(table, formula), expected)  # checked (or remembered) here
                    assert libm.fesetround(mode) == 0
                    assert torch.equal(run(table, formula), expected), (backend, dtype, mode)
                assert libm.fesetround(NEAREST) == 0  # the next table built as the library builds it
        if libm.feenableexcept(DIVBYZERO) == -1:
            sys.exit(5)
        table = normalization_table("torchvision", dtype=torch.bfloat16)
        zero_std = (formula.scale, formula.scale_in_float64, formula.mean, (0.0, 0.0, 0.0))
        assert _C.computes_items(cpu_kernel._numpy_bits(table, "table"), zero_std) is None
        """
    )


def test_formula_arguments_are_checked():
    image, plan = _frame(28, 28, 28, 28, 3, 0)
    table = normalization_table("torchvision")
    good = table_formula("torchvision")
    cases = [
        (TableFormula(good.scale, False, (0.1, 0.2, 0.3), good.std), "formula mean must hold finite float32"),
        (TableFormula(math.inf, False, good.mean, good.std), "formula scale must be finite"),
        (TableFormula(1.0, False, good.mean, good.std[:2]), "one value per channel, got 3 and 2"),
        (TableFormula(1.0, False, (), ()), "one value per channel, got 0 and 0"),
        (TableFormula(1.0, False, good.mean[:2], good.std[:2]), "the formula has 2 channels but the table has 3"),
    ]
    for formula, message in cases:
        with pytest.raises(InvalidImageError, match=message):
            _run(image, plan, table, formula)
    with pytest.raises(UnsupportedOptionError, match="formula must be a vlfast.tables.TableFormula or None, got tuple"):
        _run(image, plan, table, (1.0, False, good.mean, good.std))
    with pytest.raises(ValueError, match="formula std must hold finite float32"):
        _C.computes_items(bits(table), (1.0, False, good.mean, (math.nan,) * 3))


def test_the_library_gives_the_engine_its_tables_formula(monkeypatch):
    """``preprocess`` on the C++ engine hands the extension the formula of the table it hands it."""
    calls = []
    real = cpu_kernel._run_checked

    def spy(function, *arguments):
        calls.append((function, arguments))
        return real(function, *arguments)

    monkeypatch.setattr(cpu_kernel, "_run_checked", spy)
    image = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    for backend in Backend:
        calls.clear()
        preprocess([image], engine="cpp", backend=backend.value, dtype=torch.bfloat16)
        ((function, arguments),) = calls
        assert function == "run_frame"
        table_bits, formula = arguments[4], arguments[-1]
        assert formula == cpu_kernel.formula_arguments(table_formula(backend))
        assert np.array_equal(table_bits, bits(normalization_table(backend, dtype=torch.bfloat16)))


def test_a_batch_computes_each_frame_with_the_formula(level):
    """``run_frames`` (small frames side by side on the pool's threads, and a large one split): the same
    bytes with the formula as without; a formula of another channel count names the frame."""
    table = normalization_table("pil", dtype=torch.bfloat16)
    formula = cpu_kernel.formula_arguments(table_formula("pil"))
    sizes = [(56, 28), (84, 56), (28, 28), (560, 280)]
    images = [_frame(w + 3, h + 5, w, h, 3, i) for i, (w, h) in enumerate(sizes)]
    rows = [w * h // 196 for w, h in sizes]
    offsets = np.cumsum([0, *rows])
    outs = []
    with simd_level(level):
        assert computes(table, table_formula("pil"))
        for given in (formula, None):
            out = torch.full((int(offsets[-1]), 3 * 2 * 196), 7, dtype=torch.bfloat16)
            frames = [
                cpu_kernel.frame_arguments(image, plan, table, out, int(offset), **LAYOUT)
                for (image, plan), offset in zip(images, offsets, strict=False)
            ]
            assert _C.frames_side_by_side(frames, 2) == [0, 1, 2]
            _C.run_frames(frames, 2, given)
            outs.append(out.view(torch.int16))
        assert torch.equal(outs[0], outs[1])
        assert not (outs[0] == torch.full_like(outs[0], 7).view(torch.int16)).all(dim=1).any()
        two = (formula[0], formula[1], formula[2][:2], formula[3][:2])
        with pytest.raises(ValueError, match="frame 0: the formula has 2 channels but the table has 3"):
            _C.run_frames(frames, 2, two)


def test_a_table_changed_in_place_is_checked_again(level):
    """The kernel remembers its last checks by the table's bytes, not its address."""
    table = normalization_table("torchvision").clone()
    formula = table_formula("torchvision")
    with simd_level(level):
        assert computes(table, formula)
        table[1, 200] = float(np.nextafter(np.float32(table[1, 200].item()), np.float32(0)))
        assert not computes(table, formula)


def test_formulas_of_settings_without_one():
    """No rescale factor where rescale is off; settings that overflow float32 give no formula (looked up)."""
    formula = table_formula("torchvision", do_rescale=False, rescale_factor=None)
    mean, std = SETTINGS[0][1:]
    assert formula == TableFormula(1.0, False, tuple(np.float32(mean).tolist()), tuple(np.float32(std).tolist()))
    assert table_formula("pil", image_mean=(1e39, 0.0, 0.0)) is None
    assert table_formula("torchvision", rescale_factor=1e-40) is None
    image = np.random.default_rng(2).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    for backend in Backend:
        result = preprocess([image], engine="cpp", backend=backend.value, do_rescale=False, rescale_factor=None)
        assert result.pixel_values.shape == (24, 3 * 2 * 196)


def test_normalization_caches_its_formula_only_for_frozen_settings():
    from vlfast.tables import Normalization

    frozen = Normalization(Backend.PIL, image_mean=(0.1, 0.2, 0.3))
    assert frozen.formula() is frozen.formula() == table_formula("pil", image_mean=(0.1, 0.2, 0.3))
    mean = [0.1, 0.2, 0.3]
    changing = Normalization(Backend.PIL, image_mean=mean)
    first = changing.formula()
    mean[0] = 0.4
    assert changing.formula() != first
    assert changing.formula() == table_formula("pil", image_mean=(0.4, 0.2, 0.3))


def test_the_remembered_checks_tell_minus_zero_from_zero(level):
    """A formula remembered as giving a table's entries is not taken for one whose mean is -0.0 where it was
    +0.0: with a negative scale, x - (+0.0) keeps the table's -0.0 of value 0 and x - (-0.0) does not."""
    table = normalization_table("torchvision", do_normalize=False, rescale_factor=-1 / 255)
    assert math.copysign(1.0, table[0, 0].item()) == -1.0
    plus = table_formula("torchvision", do_normalize=False, rescale_factor=-1 / 255)
    minus = TableFormula(plus.scale, plus.scale_in_float64, (-0.0,) * 3, plus.std)
    image, plan = _frame(56, 28, 56, 28, 3, 4)
    image[0, 0] = 0
    with simd_level(level):
        assert computes(table, plus)
        assert not computes(table, minus)
        assert torch.equal(
            _run(image, plan, table, minus).view(torch.int32), _run(image, plan, table, None).view(torch.int32)
        )


@pytest.mark.parametrize("backend", list(Backend), ids=lambda b: b.value)
def test_float16_subnormals_and_overflow_are_computed_as_torch_rounds_them(backend, level):
    """Items below float16's smallest normal (scale 2**-26) and past its largest (scale 312: 255 * 312 rounds to
    infinity) and negative ones: computed, and the frames equal the looked-up ones."""
    image, plan = _frame(84, 56, 84, 56, 3, 5)
    with simd_level(level):
        for scale in (2.0**-26, 312.0, -312.0):
            options = {"do_normalize": False, "rescale_factor": scale}
            table = normalization_table(backend, dtype=torch.float16, **options)
            assert computes(table, table_formula(backend, **options)), scale
            computed = _run(image, plan, table, table_formula(backend, **options))
            assert torch.equal(computed.view(torch.int16), _run(image, plan, table, None).view(torch.int16))
        assert torch.isinf(table).any() and (table[table != 0].abs() < 2.0**-14).sum() == 0
        tiny = normalization_table(backend, dtype=torch.float16, do_normalize=False, rescale_factor=2.0**-26)
        assert ((tiny != 0) & (tiny.abs() < 2.0**-14)).any()  # subnormal items were computed above
