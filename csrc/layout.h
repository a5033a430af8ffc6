// Kernels of the table lookup that turns resized bytes into output items: the band's
// interleaved rows are split into one plane per channel, and each plane row is looked up in
// its channel's table as a whole (contiguous bytes in, contiguous items out), so that the
// patch layout afterwards only copies runs of items (or, where the items are computed, each
// patch is computed from the planes' bytes). layout.cpp holds the portable kernels and
// the x86 ones (SSSE3 deinterleave; AVX-512 VBMI lookup, 64 bytes per table lookup; at both x86
// levels, patches computed from the bytes with the table's formula, or an affine form of it, where the
// caller gives one), chosen once per frame by layout_kernels. Entries are copied bit for bit, or computed
// where that gives every entry's bits, so every kernel gives the same bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "simd.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace vlfast {

// The arithmetic that made a float table, where the caller knows it (vlfast.tables.TableFormula):
// entry (c, v) is x = v * scale, rounded to float32 (computed in float32, with scale rounded to
// float32, or in float64), then (x - mean[c]) / std_dev[c] in float32, then rounded to the item: float32,
// or bfloat16 or float16 to nearest even (which of the two a table of 2-byte items holds, the check
// says). A kernel that computes items with it must give every entry's bits (lookup_table checks that
// it does before any item is computed).
struct TableFormula {
    double scale = 1;
    float scale_float32 = 1;  // scale rounded to float32 (in the caller's rounding mode): the float32 multiply's
    bool scale_in_float64 = false;
    std::vector<float> mean, std_dev;  // one per channel
};

// What a computed item is: the formula's float32, or it rounded to bfloat16 or float16 (to nearest even;
// the affine form rounds bfloat16 ties away from zero, used only where no entry is such a tie).
enum class ItemKind { kFloat32, kBfloat16, kFloat16 };

// A frame's table, as the lookup kernels read it.
struct LookupTable {
    int64_t channels = 0;
    int item_size = 0;
    // Every channel's entries are bytes equal to their index (the compact hand-off's table): a lookup is a copy.
    bool identity = false;
    std::vector<uint32_t> entries;  // channels x kTableSize items of item_size bytes, packed (an aligned copy)
    // The VBMI kernel's: per channel, item_size planes of kTableSize bytes (plane k: byte k of each item).
    std::vector<uint8_t> planes;
    // Set where the kernels compute the items with this formula (LayoutKernels::compute_patch) instead of
    // looking them up: only where the level's kernels can and, computed with them, it gives every entry's bits.
    std::optional<TableFormula> formula;
    ItemKind computed_item = ItemKind::kFloat32;  // with `formula`: the items it computes
    // With `formula`: whether the kernels compute each item as float32 v * slope[c] + intercept[c] (a
    // multiply and an add, each rounded; slope and intercept the formula's, folded and rounded to float32)
    // rather than with the formula's own arithmetic. Only where that, too, gives every entry's bits: the
    // values are 256 bytes a channel, so a check of all of them proves any arithmetic for every image.
    bool affine = false;
    std::vector<float> slope, intercept;  // one per channel, with `affine`
};

struct LayoutKernels {
    // Whether `lookup` reads LookupTable::planes.
    bool byte_planes;
    // planes[c * plane_stride + x] = row[x * channels + c] for x < pixels, c < channels.
    void (*deinterleave)(const uint8_t* row, int64_t pixels, int64_t channels, uint8_t* planes, int64_t plane_stride);
    // Item i of dst (item_size bytes) = the table's item (channel, src[i]), for i < n.
    void (*lookup)(const uint8_t* src, int64_t n, const LookupTable& table, int64_t channel, uint8_t* dst);
    // Where the level computes items (nullptr elsewhere), for a table whose LookupTable::formula is set:
    // one patch from byte planes, the items of channel c's p runs of p bytes (run y at bytes + c *
    // channel_stride + y * row_stride) computed into patch (channels x slots x p x p items, channel-major),
    // each run into each of `slots` temporal slots. It may read up to 16 bytes from the start of any run
    // but each channel's last (the items of the bytes past the run are discarded): the planes must hold
    // whole rows (row_stride >= p) past those runs.
    void (*compute_patch)(const uint8_t* bytes, int64_t channel_stride, int64_t row_stride, int64_t channels,
                          int64_t p, int slots, const LookupTable& table, uint8_t* patch);
};

// The kernels of `level`, at most cpu_simd_level(): the x86 ones from AVX2 on (the VBMI lookup at
// the AVX-512 level), else the portable ones.
const LayoutKernels& layout_kernels(SimdLevel level);

// The table `entries` (channels x kTableSize items of item_size bytes) for `kernels`; with `formula` (may
// be nullptr), the made-by formula that `kernels` compute the items with if they can and every entry,
// computed so, has the table's bits (otherwise the items are looked up).
LookupTable lookup_table(const uint8_t* entries, int64_t channels, int item_size, const LayoutKernels& kernels,
                         const TableFormula* formula);

// Copies `bytes` bytes (no overlap) with a few unaligned moves: the runs of the patch layout
// are short (patch_size items) and of a length known only at run time, where a memcpy call
// would cost more than the copy.
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t bytes) {
    if (bytes >= 16) {
#if defined(__SSE2__) || defined(_M_X64)
        for (int64_t i = 0; i + 16 < bytes; i += 16)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
        const int64_t last = bytes - 16;  // the last 16 bytes, overlapping the loop's
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + last),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + last)));
#else
        std::memcpy(dst, src, static_cast<size_t>(bytes));
#endif
        return;
    }
    if (bytes >= 8) {  // two 8-byte moves, overlapping
        uint64_t head, tail;
        std::memcpy(&head, src, 8);
        std::memcpy(&tail, src + bytes - 8, 8);
        std::memcpy(dst, &head, 8);
        std::memcpy(dst + bytes - 8, &tail, 8);
        return;
    }
    for (int64_t i = 0; i < bytes; ++i) dst[i] = src[i];
}

}  // namespace vlfast
