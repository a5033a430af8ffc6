// The constants the CPU kernel shares with the Python package, in one place. bindings.cpp
// exposes them as module attributes of vlfast._C, and tests/test_cpu_simd.py holds them to
// their Python counterparts (vlfast.tables.TABLE_SIZE, the engines' output dtypes, the plan
// precisions, vlfast.engines.base.PatchLayout.columns).
#pragma once

#include <cstdint>

namespace vlfast {

// Entries per channel of the normalization table: one per uint8 value.
constexpr int64_t kTableSize = 256;

// Bytes per output item: uint8; bfloat16 and float16; float32. Entries are copied as bits.
constexpr int kItemSizes[] = {1, 2, 4};

// Largest accepted plan precision: the bias 1 << (precision - 1) and the accumulator are int32.
constexpr int kMaxPrecision = 30;

// Largest accepted patch_size, merge_size and temporal_patch_size: every size derived from
// them stays far from int64 overflow.
constexpr int64_t kMaxLayoutParameter = int64_t{1} << 16;

// Threads one frame may use at most.
constexpr int kMaxThreads = 1024;

// Items in one patch row of pixel_values: channels * temporal_patch_size * patch_size^2.
constexpr int64_t patch_row_items(int64_t channels, int64_t temporal_patch_size, int64_t patch_size) {
    return channels * temporal_patch_size * patch_size * patch_size;
}

}  // namespace vlfast
