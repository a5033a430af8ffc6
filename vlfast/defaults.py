"""Defaults of the stock Qwen2-VL image and video processors, and of vlfast's own commands: the one place each
constant lives."""

from __future__ import annotations

#: Spatial patch side of the vision tower.
PATCH_SIZE = 14
#: Side of the square of patches merged into one LLM token.
MERGE_SIZE = 2
#: Frames per temporal patch; still images are repeated this many times.
TEMPORAL_PATCH_SIZE = 2

#: ``Qwen2VLImageProcessor.size`` defaults (``shortest_edge`` / ``longest_edge`` are pixel counts).
IMAGE_MIN_PIXELS = 56 * 56
IMAGE_MAX_PIXELS = 28 * 28 * 1280
#: What Qwen2.5-VL checkpoints publish in ``preprocessor_config.json``.
QWEN25_VL_MIN_PIXELS = 3136
QWEN25_VL_MAX_PIXELS = 12845056
#: ``Qwen2VLVideoProcessor.size`` defaults.
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 28 * 28 * 768

#: Largest ``max(h, w) / min(h, w)`` the processors accept.
MAX_ASPECT_RATIO = 200

#: CLIP normalisation used by every Qwen2-VL / Qwen2.5-VL checkpoint.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESCALE_FACTOR = 1 / 255

#: qwen-vl-utils' own limits (in tokens of ``factor**2`` pixels), used by its ``smart_resize``.
QWEN_VL_UTILS_MIN_TOKENS = 4
QWEN_VL_UTILS_MAX_TOKENS = 16384

#: ``cap_pixels_per_frame`` (qwen-vl-utils' rule in the stock video processor): a video gets this share of
#: ``max_video_tokens`` tokens' pixels, and a frame at least this factor times ``min_pixels``.
VIDEO_TOKEN_BUDGET_SHARE = 0.9
VIDEO_MIN_PIXELS_MARGIN = 1.05

#: Freed blocks of image memory Pillow keeps per decode thread where vlfast decodes image after image
#: (``vlfast.io.cache_pillow_blocks``: the shard writer, the Ray callable).
PILLOW_BLOCKS_PER_DECODE_THREAD = 4

#: ``vlfast bench``: timed runs per case and implementation after the warm-up (full suite, ``--quick``).
BENCH_FULL_REPEATS = 15
BENCH_QUICK_REPEATS = 5
#: ``vlfast bench --simd-level`` and the scripts': its help (the level names are the extension's).
BENCH_SIMD_LEVEL_HELP = "run the C++ kernels at this level (avx512, avx2, portable; default: the CPU's highest)"
