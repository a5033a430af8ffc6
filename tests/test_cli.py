"""The ``vlfast`` command line: arguments, outputs and one-line error exits."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from simd_levels import highest_level, simd_level

from vlfast import benchmarking, cli
from vlfast.assets import shipped_photo_path
from vlfast.benchmarking import Case
from vlfast.io import encode_image

SHIPPED = str(shipped_photo_path())


@pytest.fixture
def needs_cpp_kernel() -> None:
    """Skip unless the C++ extension (the CPU engine) is built."""
    pytest.importorskip("vlfast._C", reason="the C++ extension is not built")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``vlfast ARGV`` in-process: exit code, stdout, stderr."""
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == cli.EXIT_ERROR
    assert err.count("\n") == 1 and err.startswith("vlfast: error: "), err
    assert fragment in err
    assert "Traceback" not in err


def write_png(path: Path, height: int, width: int) -> str:
    PIL.Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return str(path)


def test_shipped_photo_is_a_small_rgb_image() -> None:
    path = shipped_photo_path()
    assert path.stat().st_size < 300_000
    with PIL.Image.open(path) as image:
        assert image.mode == "RGB" and image.size == (451, 300)


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and all(command in out for command in ("preprocess", "bench", "info"))
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("vlfast ")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "required"),
        (["resize"], "invalid choice"),
        (["preprocess", "--nope"], "unrecognized arguments: --nope"),
        (["preprocess", "--dtype", "float64"], "argument --dtype: invalid choice: 'float64'"),
        (["preprocess", "--backend", "opencv"], "argument --backend"),
        (["preprocess", "--engine", "cuda"], "argument --engine"),
        (["preprocess", "--device", "tpu"], "not a torch device"),
        (["preprocess", "--min-pixels", "0"], "expected a positive integer, got 0"),
        (["preprocess", "--max-pixels", "many"], "expected a positive integer, got 'many'"),
        (["preprocess", "--min-pixels", "10000", "--max-pixels", "5000"], "must not exceed --max-pixels"),
        (["bench", "--device", "tpu"], "argument --device"),
        (["bench", "--repeats", "-1"], "argument --repeats"),
    ],
)
def test_bad_arguments(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.png"
    code, _, err = run(["preprocess", str(missing)], capsys)
    assert_one_line_error(code, err, f"no such file: '{missing}'")


def test_undecodable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG this is not an image")
    code, _, err = run(["preprocess", str(garbage)], capsys)
    assert_one_line_error(code, err, f"file '{garbage}' is not an image")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["preprocess", "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "CUDA is not available")


def test_vlfast_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None) -> None:
    code, _, err = run(["preprocess", write_png(tmp_path / "line.png", 1, 300)], capsys)
    assert_one_line_error(code, err, "aspect ratio")


def test_console_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vlfast.cli", "preprocess", str(tmp_path / "missing.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == cli.EXIT_ERROR
    (line,) = result.stderr.strip().splitlines()
    missing = tmp_path / "missing.jpg"
    assert line.startswith(f"vlfast: error: {missing}: no such file: '{missing}'")


def test_preprocess_text_output(capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None) -> None:
    code, out, err = run(["preprocess"], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[0] == SHIPPED
    for expected in (
        "original size    451x300 (width x height)",
        "model input      448x308",
        "image_grid_thw   [1, 22, 32]",
        "image tokens     176",
        "pixel_values     (704, 1176) float32 on cpu",
        "engine cpp",
    ):
        assert expected in out


def test_preprocess_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None) -> None:
    second = write_png(tmp_path / "gray.png", 1080, 1920)
    code, out, _ = run(
        ["preprocess", "--json", "--backend", "pil", "--dtype", "bfloat16", "--max-pixels", "1003520", SHIPPED, second],
        capsys,
    )
    assert code == 0
    records = json.loads(out)
    assert [record["image"] for record in records] == [SHIPPED, second]
    first, big = records
    assert first["original_size"] == {"width": 451, "height": 300}
    assert first["model_input_size"] == {"width": 448, "height": 308}
    assert first["image_grid_thw"] == [1, 22, 32] and first["image_tokens"] == 176
    assert first["pixel_values"] == {"shape": [704, 1176], "dtype": "bfloat16", "device": "cpu"}
    assert first["backend"] == "pil" and first["engine"] == "cpp" and first["time_ms"] > 0
    assert first["repeated_time_ms"] > 0
    assert "check" not in first
    # 1920x1080 is shrunk below --max-pixels.
    size = big["model_input_size"]
    assert size["width"] * size["height"] <= 1003520 and big["image_tokens"] == size["width"] * size["height"] // 784


def test_preprocess_goes_on_after_a_bad_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    banner = write_png(tmp_path / "banner_1x300.png", 1, 300)
    missing = str(tmp_path / "missing.png")
    code, out, err = run(["preprocess", SHIPPED, banner, missing, SHIPPED], capsys)
    assert code == cli.EXIT_ERROR
    assert out.count("image_grid_thw   [1, 22, 32]") == 2  # both good images, before and after the bad ones
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith(f"vlfast: error: {banner}: ") and "aspect ratio" in lines[0]
    assert lines[1].startswith(f"vlfast: error: {missing}: no such file")
    code, out, _ = run(["preprocess", "--json", banner, SHIPPED], capsys)
    bad, good = json.loads(out)
    assert code == cli.EXIT_ERROR and bad["image"] == banner and bad["error"]["type"] == "AspectRatioError"
    assert good["image_grid_thw"] == [1, 22, 32]


def test_sources_from_a_file_and_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    uri = encode_image(SHIPPED)
    listing = tmp_path / "images.txt"
    listing.write_text(f"{uri}\n\n{SHIPPED}\n")
    code, out, err = run(["preprocess", f"@{listing}"], capsys)
    assert code == 0 and err == ""
    label = f"data URI (image/png, {len(uri)} characters)"
    assert out.splitlines()[0] == label and uri not in out  # the heading does not echo the data URI
    assert out.count("image_grid_thw   [1, 22, 32]") == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(uri + "\n"))
    code, out, _ = run(["preprocess", "--json", "-"], capsys)
    (record,) = json.loads(out)
    assert code == 0 and record["image"] == label and record["image_tokens"] == 176
    code, _, err = run(["preprocess", f"@{tmp_path / 'none.txt'}"], capsys)
    assert_one_line_error(code, err, "cannot read the list of images @")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_check_identical_on_shipped_photo(backend: str, dtype: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    code, out, _ = run(["preprocess", "--check", "--json", "--backend", backend, "--dtype", dtype], capsys)
    assert code == 0
    (record,) = json.loads(out)
    assert record["check"]["identical"] is True and record["check"]["max_abs_diff"] == 0.0
    expected = "Qwen2VLImageProcessor" if backend == "torchvision" else "Qwen2VLImageProcessorPil"
    assert record["check"]["reference"] == f"transformers.{expected}"


def test_check_reports_a_difference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    exact = cli.preprocess

    def off_by_a_little(*args, **kwargs):
        result = exact(*args, **kwargs)
        result.pixel_values[0, 0] += 0.25
        return result

    monkeypatch.setattr(cli, "preprocess", off_by_a_little)
    code, out, _ = run(["preprocess", "--check"], capsys)
    assert code == cli.EXIT_MISMATCH
    assert "DIFFERENT from transformers.Qwen2VLImageProcessor: max abs diff 0.25" in out


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["info"], capsys)
    assert code == 0
    for expected in ("torch", "transformers", "pillow", "triton", "C++ extension", "Triton on CUDA", "interpreter"):
        assert expected in out
    code, out, _ = run(["info", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and set(info) == {"versions", "devices", "kernels", "models"}
    assert info["versions"]["torch"] == torch.__version__
    assert info["devices"]["cpu"]["cores"] >= 1
    assert set(info["kernels"]) == {"cpp_extension", "cpp_simd_level", "triton_cuda", "triton_interpreter"}


@pytest.mark.usefixtures("needs_cpp_kernel")
def test_info_names_the_simd_level_the_kernels_run_with(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["info"], capsys)
    assert code == 0 and f"{'C++ extension (CPU)':<24}yes ({highest_level()} kernels)\n" in out
    with simd_level("portable"):
        code, out, _ = run(["info", "--json"], capsys)
    assert json.loads(out)["kernels"]["cpp_simd_level"] == "portable"


def test_info_lists_the_model_families(capsys: pytest.CaptureFixture[str]) -> None:
    """Each family and its status (the README's Models table; tests/test_qwen3_vl.py and test_glm4v.py prove them)."""
    code, out, _ = run(["info"], capsys)
    assert code == 0 and "\nmodels\n" in out
    for family in cli.MODEL_FAMILIES:
        assert f"{family['family']:<24}{family['status']}" in out
    code, out, _ = run(["info", "--json"], capsys)
    families = [family["family"] for family in json.loads(out)["models"]]
    assert families == ["Qwen2-VL, Qwen2.5-VL", "Qwen3-VL, Qwen3.5", "GLM-4.1V, GLM-4.6V"]


def test_bench_writes_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(benchmarking, "QUICK_CASES", (Case("tiny", ((56, 84),)),))
    code, out, _ = run(["bench", "--quick", "--repeats", "1", "--device", "cpu", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "| tiny | 84x56 |" in out
    assert {path.name for path in tmp_path.iterdir()} == {"results.csv", "results.md", "latency.png"}


def test_bench_at_a_capped_simd_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    """``--simd-level portable``: the run records the cap (where the CPU has more) and leaves the level as it
    was; a level this CPU lacks is a one-line error."""
    from vlfast.engines import cpp

    monkeypatch.setattr(benchmarking, "QUICK_CASES", (Case("tiny", ((56, 84),)),))
    before = cpp.simd_level()
    argv = ["bench", "--quick", "--repeats", "1", "--device", "cpu", "--out", str(tmp_path), "--simd-level"]
    code, out, _ = run([*argv, "portable"], capsys)
    assert code == 0 and cpp.simd_level() == before
    highest = cpp.simd_levels()[-1]
    expected = "portable" if highest == "portable" else f"portable (capped; this CPU has {highest})"
    assert f"C++ kernels: {expected})" in out
    code, _, err = run([*argv, "avx1024"], capsys)
    assert code == 2 and cpp.simd_level() == before
    levels = ", ".join(cpp.simd_levels())
    assert err.strip() == f"vlfast: error: this CPU runs the kernels at {levels}, not at 'avx1024'"


def test_unwritable_bench_folder_is_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["bench", "--quick", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("vlfast: error:") and "Traceback" not in "\n".join(err)


# ---------------------------------------------------------------------------
# vlfast preprocess DIR --out FILE: shards
# ---------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Three photos (JPEG, PNG in a subfolder, WebP) and a file that is not an image."""
    import skimage.data

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    PIL.Image.fromarray(skimage.data.chelsea()).save(folder / "a.jpg", quality=90)
    PIL.Image.fromarray(skimage.data.astronaut()[::2, ::2]).save(folder / "sub" / "b.png")
    PIL.Image.fromarray(skimage.data.coffee()[::2, ::2]).save(folder / "c.webp")
    (folder / "notes.txt").write_text("not an image, not listed")
    return folder


def stock_of(paths: list[Path], backend: str) -> dict[str, torch.Tensor]:
    from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

    size = {"shortest_edge": 3136, "longest_edge": 12845056}  # the command's Qwen2.5-VL defaults
    stock = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}[backend](size=size)
    return stock([str(path) for path in paths], return_tensors="pt")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_folder_to_safetensors_shards(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    from safetensors import safe_open

    out = tmp_path / "shards" / "photos.safetensors"
    code, stdout, stderr = run(["preprocess", str(photo_folder), "--out", str(out), "--shard-mb", "5"], capsys)
    assert code == 0, stderr
    assert "vlfast preprocess" in stderr and "3/3" in stderr  # the progress bar
    assert stdout.startswith("3 images, ") and " images/s" in stdout and "tokens/s" in stdout
    shards = sorted(out.parent.glob("photos-*.safetensors"))
    assert [path.name for path in shards] == ["photos-00000.safetensors", "photos-00001.safetensors"]
    pixel_values, grids, sources = [], [], []
    for path in shards:
        with safe_open(str(path), framework="pt") as shard:
            pixel_values.append(shard.get_tensor("pixel_values"))
            grids.append(shard.get_tensor("image_grid_thw"))
            metadata = shard.metadata()
            sources += json.loads(metadata["sources"])
            assert metadata["backend"] == "torchvision" and metadata["compact"] == "False"
    assert sources == ["a.jpg", "c.webp", "sub/b.png"]  # sorted paths under the folder
    stock = stock_of([photo_folder / name for name in sources], "torchvision")
    assert torch.equal(torch.cat(pixel_values), stock["pixel_values"])
    assert torch.equal(torch.cat(grids), stock["image_grid_thw"])
    index = json.loads((out.parent / "photos.index.json").read_text())
    assert [entry["sources"] for entry in index["shards"]] == [["a.jpg", "c.webp"], ["sub/b.png"]]
    tokens = int(stock["image_grid_thw"].prod(dim=1).sum()) // 4
    assert sum(entry["image_tokens"] for entry in index["shards"]) == tokens
    assert f"{tokens} image tokens, 2 shards" in stdout


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_compact_npz_shards_expand_to_the_stock_and_failures_are_reported(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    import vlfast

    (photo_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "compact.npz"
    argv = ["preprocess", str(photo_folder), "--out", str(out), "--compact", "--backend", "pil", "--workers", "2"]
    code, stdout, stderr = run([*argv, "--json"], capsys)
    assert code == cli.EXIT_ERROR  # one image failed; the others are written
    summary = json.loads(stdout)
    assert summary["images"] == 3 and [failure["image"] for failure in summary["failed"]] == ["broken.png"]
    assert summary["failed"][0]["type"] == "DecodeError" and "broken.png" in summary["failed"][0]["message"]
    assert "vlfast: error: broken.png: " in stderr
    with np.load(out.with_name("compact-00000.npz")) as shard:
        assert shard["pixel_values"].dtype == np.uint8
        assert shard["sources"].tolist() == ["a.jpg", "c.webp", "sub/b.png"]
        compact, grid = torch.from_numpy(shard["pixel_values"]), torch.from_numpy(shard["image_grid_thw"])
    stock = stock_of([photo_folder / "a.jpg", photo_folder / "c.webp", photo_folder / "sub" / "b.png"], "pil")
    expanded = vlfast.expand_patches(compact, grid, vlfast.ImageProcessor(backend="pil"))
    assert torch.equal(expanded, stock["pixel_values"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_an_image_over_the_shard_size_is_reported_and_the_others_written(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], needs_cpp_kernel: None
) -> None:
    """An image whose pixel_values alone exceed --shard-mb is one error line naming it; the run goes on."""
    PIL.Image.fromarray(np.zeros((720, 1280, 3), np.uint8)).save(photo_folder / "big.png")  # 21.5 MiB of float32
    out = tmp_path / "photos.safetensors"
    code, stdout, stderr = run(["preprocess", str(photo_folder), "--out", str(out), "--shard-mb", "5"], capsys)
    assert code == cli.EXIT_ERROR
    assert (
        "vlfast: error: big.png: image 1: its pixel_values would take 21.5 MiB (728x1288), over max_chunk_bytes="
        "5.0 MiB (a chunk holds whole images); raise max_chunk_bytes or lower max_pixels (--shard-mb sets "
        "max_chunk_bytes in MiB)\n" in stderr
    )
    assert "4/4" in stderr and "; 1 failed" in stdout  # every image counted, the big one as failed
    index = json.loads((tmp_path / "photos.index.json").read_text())
    assert [entry["sources"] for entry in index["shards"]] == [["a.jpg", "c.webp"], ["sub/b.png"]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_the_shard_writer_lets_pillow_keep_freed_image_memory(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pillow_cache_off: object
) -> None:
    """Pillow's block cache (off by default: every decode page-faults fresh memory) on, 4 blocks per decode
    thread, unless PILLOW_BLOCKS_MAX says otherwise (conftest puts it back after the test)."""
    core = pillow_cache_off
    argv = ["preprocess", str(photo_folder), "--out", str(tmp_path / "a.npz"), "--workers", "3", "--compact"]
    assert run(argv, capsys)[0] == 0 and core.get_blocks_max() == 12


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--out", "x.parquet"], "--out must end with .safetensors or .npz, got 'x.parquet'"),
        (["--compact"], "--compact and --workers go with --out"),
        (["--out", "x.safetensors", "--check"], "--check compares images one by one"),
        (["--out", "x.npz", "--dtype", "bfloat16"], "NumPy has no bfloat16"),
    ],
)
def test_shard_options_are_checked(
    photo_folder: Path, tmp_path: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["preprocess", str(photo_folder), *[str(tmp_path / a) if a.startswith("x.") else a for a in extra]]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, fragment)
