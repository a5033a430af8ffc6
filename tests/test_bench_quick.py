"""The benchmark engine in a minimal mode: tiny cases, one repeat, every output written and parsable."""

from __future__ import annotations

import csv
import runpy
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch

from vlfast import benchmarking
from vlfast.benchmarking import (
    CSV_FIELDS,
    FULL_CASES,
    QUICK_CASES,
    Case,
    available_implementations,
    case_images,
    case_inputs,
    run_benchmark,
)
from vlfast.engines import cpp as cpu_kernel
from vlfast.machine import machine_info

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
TINY_CASES = (Case("tiny", ((56, 84),)), Case("tiny-batch", ((60, 90), (100, 50))))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    out_dir = tmp_path_factory.mktemp("bench")
    return run_benchmark(out_dir, cases=TINY_CASES, repeats=1, devices=("cpu",), progress=False)


def test_suites_cover_the_documented_cases() -> None:
    sizes = {case.sizes[0] for case in FULL_CASES if case.batch == 1}
    assert {(448, 448), (720, 1280), (1080, 1920), (2160, 3840)} <= sizes
    assert any(max(h, w) / min(h, w) >= 10 for h, w in sizes), "a very wide image"
    assert any(case.batch == 8 and len(set(case.sizes)) == 8 for case in FULL_CASES)
    # a batch of images too small to split over threads (under 65,536 pixels each, already at the model's size)
    assert any(case.batch >= 16 and all(h * w < 65536 for h, w in case.sizes) for case in QUICK_CASES)
    assert set(QUICK_CASES) < set(FULL_CASES)
    assert any(case.pil and case.sizes == ((1080, 1920),) for case in FULL_CASES), "1080p as PIL images"
    # PIL images viewed in place (one block of Pillow's memory) and copied (several: 4K), and a batch of them
    assert any(case.pil and case.sizes == ((2160, 3840),) for case in FULL_CASES), "4K as PIL images"
    assert any(case.pil and case.batch == 8 for case in FULL_CASES), "a batch of PIL images"


def test_case_images_are_real_photos_of_the_case_size() -> None:
    images = case_images(Case("wide", ((200, 4000), (57, 31))))
    assert [image.shape for image in images] == [(200, 4000, 3), (57, 31, 3)]
    assert all(image.dtype == np.uint8 and image.flags.c_contiguous for image in images)
    assert images[0].std() > 10, "a photo, not a flat color"


def test_pil_cases_give_pil_images_of_the_same_pixels() -> None:
    case = Case("pil", ((57, 31), (20, 40)), pil=True)
    inputs = case_inputs(case)
    assert all(isinstance(image, PIL.Image.Image) and image.mode == "RGB" for image in inputs)
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(inputs, case_images(case), strict=True))
    assert case_inputs(Case("arrays", case.sizes))[0].shape == (57, 31, 3)
    assert case.description == "2 images (PIL)" and Case("one", ((20, 40),), pil=True).description == "40x20 (PIL)"


def test_cpu_implementations() -> None:
    implementations, skipped = available_implementations(("cpu",))
    names = [impl.name for impl in implementations]
    assert names[-2:] == ["transformers-torchvision-cpu", "transformers-pil"]
    assert ("vlfast-cpu" in names) == cpu_kernel.available()
    assert all("cuda" not in note for note in skipped)


def test_csv_parses(report) -> None:
    with open(report.files["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    implementations = {row["implementation"] for row in rows}
    assert len(rows) == len(TINY_CASES) * len(implementations)
    assert set(CSV_FIELDS) <= set(rows[0]) and {"cpu", "cpu_cores", "torch", "transformers", "date"} <= set(rows[0])
    for row in rows:
        assert float(row["min_ms"]) <= float(row["median_ms"]) <= float(row["max_ms"])
        assert float(row["speedup_vs_best_stock"]) > 0 and row["repeats"] == "1"
        if row["implementation"] == "vlfast-cpu":
            assert row["bit_exact"] == "yes"
    assert {row["case"]: row["batch"] for row in rows} == {"tiny": "1", "tiny-batch": "2"}


def test_markdown_table(report) -> None:
    text = report.files["markdown"].read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:3] == ["case", "input", "image tokens"] and "transformers PIL" in header
    assert len(table) == 2 + len(TINY_CASES)
    assert all(len(row.strip("|").split("|")) == len(header) for row in table)
    assert f"C++ kernels: {report.machine['cpu_kernels'] or 'not built'})" in text
    assert report.machine["cpu_kernels"] == machine_info()["cpu_kernels"]  # which kernels ran: in every result


def test_plot_is_a_png(report) -> None:
    with PIL.Image.open(report.files["plot"]) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_bench_cpu_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarking, "QUICK_CASES", TINY_CASES[:1])
    main = runpy.run_path(str(BENCH_DIR / "bench_cpu.py"))["main"]
    assert main(["--quick", "--repeats", "1", "--out", str(tmp_path)]) == 0
    assert {path.name for path in tmp_path.iterdir()} == {"results.csv", "results.md", "latency.png"}
    with pytest.raises(SystemExit) as refused:  # a level this CPU lacks: a usage error, before measuring
        main(["--quick", "--repeats", "1", "--simd-level", "avx1024", "--out", str(tmp_path / "refused")])
    assert refused.value.code == 2
    note = (tmp_path / "results.md").read_text().split("Memory write bandwidth")[1]
    for condition in ("cold", "hot"):
        assert f"torch fill {torch.get_num_threads()} threads, {condition}:" in note


def test_bench_cpu_passes_script(tmp_path: Path) -> None:
    script = runpy.run_path(str(BENCH_DIR / "bench_cpu_passes.py"))
    # each pass level is timed after an untimed run of itself (every level meets the same caches)
    for timing in script["measurements"](100, 70, 1):
        assert (timing.prepare is not None) == (" horizontal " in timing.name or " vertical " in timing.name)
    main = script["main"]
    assert main(["--sizes", "100x70,700x500", "--repeats", "1", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "passes.csv", newline="") as handle:
        names = {row["measurement"] for row in csv.DictReader(handle)}
    threads = torch.get_num_threads()
    for condition in ("cold", "hot"):
        assert f"write floor torch fill {threads} threads, {condition}" in names
    for level in cpu_kernel._C.simd_levels():
        assert f"100x70 horizontal torchvision {level}" in names
        assert f"100x70 vertical pil {level}" in names
    assert "100x70 frame float32 1 thread" in names
    # compute-bound frames: only where the input is larger than the downscale budget (700x500 is, 100x70 is not)
    downscaled = {name for name in names if " frame to " in name}
    assert all(name.startswith("700x500 frame to ") for name in downscaled)
    for backend in ("torchvision", "pil"):
        for label in {"1 thread", f"{threads} threads" if threads > 1 else "1 thread"}:
            assert sum(name.endswith(f" {backend} float32 {label}") for name in downscaled) == 1
    assert (tmp_path / "passes.md").read_text().count("\n|") == len(names) + 2  # table header, rule, a row each


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_gpu_script_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(BENCH_DIR / "bench_gpu.py"))["main"]
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_latency_plot_draws_pil_cases_and_batches_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PIL-image case has an array case's size: it is drawn as its own marker, not on the line through the
    array cases, and a batch as a star; every implementation labelled once."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [
        benchmarking.Case("448x448", ((448, 448),)),
        benchmarking.Case("1920x1080", ((1080, 1920),)),
        benchmarking.Case("1920x1080-pil", ((1080, 1920),), pil=True),
        benchmarking.Case("mixed-2", ((448, 448), (1080, 1920))),
    ]
    implementations = [
        benchmarking.Implementation(name, name, "cpu", stock, lambda images: lambda: None)
        for name, stock in (("ours", False), ("theirs", True))
    ]
    measurements = [
        benchmarking.Measurement(case, impl, [0.001 * (i + 1) * (j + 1)] * 3)
        for i, case in enumerate(cases)
        for j, impl in enumerate(implementations)
    ]
    report = benchmarking.BenchmarkReport(measurements, {"cpu": "cpu", "cpu_cores": "2", "gpu": ""}, 3, 1, [])
    drawn = []
    original = plt.Axes.errorbar

    def spy(axes, x, y, **kwargs):
        drawn.append((list(x), kwargs["fmt"], kwargs["label"]))
        return original(axes, x, y, **kwargs)

    monkeypatch.setattr(plt.Axes, "errorbar", spy)
    benchmarking.plot_latency(report, tmp_path / "latency.png")
    megapixels = {case.name: case.megapixels for case in cases}
    for name in ("ours", "theirs"):
        assert (sorted([megapixels["448x448"], megapixels["1920x1080"]]), "-o", name) in drawn
        assert ([megapixels["1920x1080-pil"]], "D", None) in drawn
        assert ([megapixels["mixed-2"]], "*", None) in drawn
    assert len(drawn) == 6
    with PIL.Image.open(tmp_path / "latency.png") as image:
        assert image.format == "PNG"


@pytest.mark.slow
def test_vlfast_bench_quick_end_to_end(tmp_path: Path) -> None:
    """What CI promises: `vlfast bench --quick` (the real quick suite) writes a CSV, a table and a plot that parse."""
    from vlfast.cli import main

    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["case"] for row in rows} == {case.name for case in QUICK_CASES}
    assert all(row["bit_exact"] == "yes" for row in rows if row["implementation"] == "vlfast-cpu")
    assert (tmp_path / "results.md").read_text(encoding="utf-8").count("\n|") >= 1 + len(QUICK_CASES)
    with PIL.Image.open(tmp_path / "latency.png") as image:
        assert image.format == "PNG"


def test_bench_cpu_ab_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build-against-build script, a copy of this tree's build against the build itself: every pass at
    every SIMD level past the portable one, then every frame at every idle gap, in the tables, the machine and
    its write floor in the header, the caller's SIMD level left as it was, and differing bytes (of a pass, of
    a frame) refused."""
    _C = pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # as `python bench/bench_cpu_ab.py` runs it
    main = runpy.run_path(str(BENCH_DIR / "bench_cpu_ab.py"))["main"]
    baseline = tmp_path / Path(_C.__file__).name
    shutil.copyfile(_C.__file__, baseline)  # another file: a library of its own, with a SIMD level of its own
    levels = [level for level in _C.simd_levels() if level != "portable"]
    sizes = ["--widths", "1932", "--heights", "1092", "--rounds", "1"]
    frames = ["--frames", "448x448,640x480:336x224", "--gaps", "0,0.5", "--threads", "2"]
    _C.set_simd_level(_C.simd_levels()[0])  # the caller's cap, which the script must leave alone
    try:
        assert main([str(baseline), *sizes, *frames, "--names", "a,b", "--out", str(tmp_path)]) == 0
        assert _C.simd_level() == _C.simd_levels()[0]
    finally:
        _C.set_simd_level(_C.simd_levels()[-1])
    header, _, *tables = (tmp_path / "ab.md").read_text().splitlines()
    assert "baseline a, candidate b" in header
    assert "frames: 2 threads, float32" in header
    assert "write floor 50.6 MB written in" in header
    blank = tables.index("")
    passes, frame_rows = tables[2:blank], tables[blank + 3 :]
    assert len(passes) == len(levels) * 2 * 2  # horizontal and vertical, both backends
    for level in levels:
        assert sum(f"| {level} |" in row for row in passes) == 4
    assert [row.split(" | ")[:3] for row in frame_rows] == [
        ["| 448x448", "448x448", "0"],
        ["| 448x448", "448x448", "0.5"],
        ["| 640x480", "336x224", "0"],
        ["| 640x480", "336x224", "0.5"],
    ]

    load_build = main.__globals__["load_build"]

    class OneBitOff:
        """The candidate build, writing one bit differently in a pass or in a frame."""

        def __init__(self, module: object, method: str) -> None:
            self.module, self.method = module, method

        def __getattr__(self, name: str) -> object:
            if name != self.method:
                return getattr(self.module, name)

            def off(*args: object) -> None:
                getattr(self.module, name)(*args)
                out = args[5] if name == "run_frame" else args[3]
                out.view(np.uint8).flat[0] ^= 1  # one bit, whatever the dtype

            return off

    for method, only in (("resample_axis", ["--frames", ""]), ("run_frame", ["--widths", "", "--heights", ""])):

        def load_off(path: Path, name: str, method: str = method) -> object:
            module = load_build(path, name)
            return OneBitOff(module, method) if name == "vlfast_candidate" else module

        monkeypatch.setitem(main.__globals__, "load_build", load_off)
        with pytest.raises(SystemExit, match="the builds differ"):
            main([str(baseline), *sizes, *frames, *only, "--levels", "portable", "--out", str(tmp_path)])


class RecordingBuild:
    """A build of the extension whose ``run_frame`` first records (build name, SIMD level, output item size)."""

    def __init__(self, module: object, name: str, seen: list[tuple[str, str, int]]) -> None:
        self.module, self.name, self.seen = module, name, seen

    def __getattr__(self, attribute: str) -> object:
        if attribute != "run_frame":
            return getattr(self.module, attribute)

        def run_frame(*args: object) -> None:
            self.seen.append((self.name, self.module.simd_level(), args[5].itemsize))  # args[5]: the output
            self.module.run_frame(*args)

        return run_frame


def bench_cpu_ab_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Callable[[list[str]], int], Path, list[tuple[str, str, int]]]:
    """bench_cpu_ab's ``main`` with both builds recording their frames, a baseline (a copy of this tree's build) and
    the record."""
    _C = pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    main = runpy.run_path(str(BENCH_DIR / "bench_cpu_ab.py"))["main"]
    baseline = tmp_path / Path(_C.__file__).name
    shutil.copyfile(_C.__file__, baseline)
    load_build = main.__globals__["load_build"]
    seen: list[tuple[str, str, int]] = []
    monkeypatch.setitem(
        main.__globals__, "load_build", lambda path, name: RecordingBuild(load_build(path, name), name, seen)
    )
    return main, baseline, seen


AB_FRAME_OPTIONS = ["--widths", "", "--heights", "", "--frames", "448x448", "--gaps", "0", "--rounds", "2"]


def test_bench_cpu_ab_runs_the_frames_at_the_level_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--frame-level``: both builds run the frames at that level (the header says which), the caller's level
    is left as it was; a level the CPU lacks is a usage error."""
    main, baseline, seen = bench_cpu_ab_recording(tmp_path, monkeypatch)
    level = cpu_kernel._C.simd_levels()[0]  # portable: on every CPU, and not the highest
    caller = cpu_kernel._C.simd_level()
    assert main([str(baseline), *AB_FRAME_OPTIONS, "--frame-level", level, "--out", str(tmp_path)]) == 0
    assert cpu_kernel._C.simd_level() == caller
    assert {name for name, _, _ in seen} == {"vlfast_baseline", "vlfast_candidate"}
    assert {frame_level for _, frame_level, _ in seen} == {level}
    assert f"float32, the {level} level;" in (tmp_path / "ab.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main([str(baseline), *AB_FRAME_OPTIONS, "--frame-level", "avx1024", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "frame level 'avx1024' is not in both builds" in capsys.readouterr().err


def test_bench_cpu_ab_runs_the_baseline_at_its_own_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--baseline-level``: the baseline runs every frame at that level, the candidate at the frame level (one
    level against another, the header saying so); the caller's level is left as it was; a level the CPU lacks
    is a usage error."""
    main, baseline, seen = bench_cpu_ab_recording(tmp_path, monkeypatch)
    lowest, highest = cpu_kernel._C.simd_levels()[0], cpu_kernel._C.simd_levels()[-1]
    caller = cpu_kernel._C.simd_level()
    options = [*AB_FRAME_OPTIONS, "--baseline-level", lowest, "--frame-level", highest, "--names", "a,b"]
    assert main([str(baseline), *options, "--out", str(tmp_path)]) == 0
    assert cpu_kernel._C.simd_level() == caller
    assert {(name, level) for name, level, _ in seen} == {("vlfast_baseline", lowest), ("vlfast_candidate", highest)}
    assert f"baseline a at {lowest}, candidate b;" in (tmp_path / "ab.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main([str(baseline), *AB_FRAME_OPTIONS, "--baseline-level", "avx1024", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "baseline level 'avx1024' is not in both builds" in capsys.readouterr().err


def test_bench_cpu_ab_times_the_passes_on_the_input_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--input``: the passes resize an image of that size (rows and columns named by it, the header too)."""
    main, baseline, _ = bench_cpu_ab_recording(tmp_path, monkeypatch)
    options = ["--input", "200x90", "--widths", "212", "--heights", "84", "--frames", "", "--rounds", "1"]
    assert main([str(baseline), *options, "--levels", "portable", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "ab.md").read_text()
    assert "passes: one thread, a 200x90 RGB image" in text
    assert "| 200->212 columns | portable | torchvision |" in text and "| 90->84 rows | portable | pil |" in text


def test_bench_cpu_ab_runs_the_frames_in_the_dtype_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--dtype``: both builds write frames of that dtype's item size (the header names the dtype); float32 unless
    told (a dtype the script does not know: test_bench_cpu_ab_frame_options_are_checked)."""
    main, baseline, seen = bench_cpu_ab_recording(tmp_path, monkeypatch)
    for dtype, name, itemsize in ((["--dtype", "bfloat16"], "bfloat16", 2), ([], "float32", 4)):
        seen.clear()
        assert main([str(baseline), *AB_FRAME_OPTIONS, *dtype, "--out", str(tmp_path)]) == 0
        assert {build for build, _, _ in seen} == {"vlfast_baseline", "vlfast_candidate"}
        assert {size for _, _, size in seen} == {itemsize}
        assert f"threads, {name}, the" in (tmp_path / "ab.md").read_text()


def test_bench_cpu_ab_evicts_the_caches_before_each_frame_when_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--cold``: the caches evicted before every frame of the rounds (the warm-up round's too), outside the
    timed span, and only then; the header saying so."""
    main, baseline, seen = bench_cpu_ab_recording(tmp_path, monkeypatch)
    monkeypatch.setitem(main.__globals__, "EVICT", lambda: seen.append(("evict", "", 0)))
    clock = main.__globals__["time"]

    def perf_counter() -> float:
        seen.append(("clock", "", 0))
        return clock.perf_counter()

    monkeypatch.setitem(main.__globals__, "time", SimpleNamespace(perf_counter=perf_counter, sleep=clock.sleep))
    for cold in (True, False):
        seen.clear()
        assert main([str(baseline), *AB_FRAME_OPTIONS, *(["--cold"] if cold else []), "--out", str(tmp_path)]) == 0
        events = ["frame" if name.startswith("vlfast_") else name for name, _, _ in seen]
        evict = ["evict"] if cold else []
        warm_up, timed = [*evict, "clock", "frame"], [*evict, "clock", "frame", "clock"]
        # both builds in a warm-up round, then in each of "--rounds 2"; then one run each to compare their bytes
        assert events == warm_up * 2 + timed * 4 + ["frame"] * 2
        assert ("caches evicted before each" in (tmp_path / "ab.md").read_text()) == cold


@pytest.mark.parametrize(
    "option, message",
    [
        (["--frames", "448x"], "a frame is WxH or WxH:WxH"),
        (["--frames", "640x480:300x200"], "must be a multiple of 28"),
        (["--frames", "0x448"], "positive sides"),
        (["--gaps", "0,fast"], "gaps are milliseconds >= 0"),
        (["--gaps", "-1"], "gaps are milliseconds >= 0"),
        (["--dtype", "int8"], "invalid choice: 'int8'"),
        (["--input", "640"], "expected WxH, got '640'"),
        (["--input", "0x480"], "sizes must be positive, got '0x480'"),
    ],
)
def test_bench_cpu_ab_frame_options_are_checked(
    option: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A frame, gap, dtype or input the script cannot run is a usage error naming it, before anything is loaded or
    timed."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    main = runpy.run_path(str(BENCH_DIR / "bench_cpu_ab.py"))["main"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing.so"), *option, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_overhead_compares_a_baseline_case_by_case(capsys: pytest.CaptureFixture) -> None:
    """The before/after script, this tree against itself: a row per case and setting, the outputs checked; a case
    it does not know is a usage error naming the ones it does."""
    main = runpy.run_path(str(BENCH_DIR / "bench_overhead.py"))["main"]
    main([str(BENCH_DIR.parent), "--cases", "small-32,video-32x320x180", "--calls", "5", "--hd-calls", "5"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| small") or "| video" in line]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| small-32", "alone"],
        ["| small-32", "after stock"],
        ["| video-32x320x180", "alone"],
        ["| video-32x320x180", "after stock"],
    ]
    main([str(BENCH_DIR.parent), "--cases", "448x448", "--compact", "--simd-level", "portable", "--calls", "5"])
    assert [line.split(" | ")[:2] for line in capsys.readouterr().out.splitlines() if line.startswith("| 448")] == [
        ["| 448x448", "alone"],
        ["| 448x448", "after stock"],
    ]
    extension = cpu_kernel._C
    main([str(BENCH_DIR.parent), "--cases", "448x448", "--stub-kernel", "--calls", "5"])
    stubbed = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| 448")]
    assert [row[:2] for row in stubbed] == [["| 448x448", "alone"], ["| 448x448", "after stock"]]
    assert all(row[-1] == "- |" for row in stubbed)  # no pixels written, no ratio to the stock
    assert cpu_kernel._C is extension  # the extension is back
    for options, message in (
        (["--cases", "448x448,tiny"], "unknown cases ['tiny']; choose from"),
        (["--cases", "video-32x320x180", "--compact"], "--compact is for images"),
        (["--simd-level", "avx9"], "not 'avx9'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([str(BENCH_DIR.parent), *options])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
