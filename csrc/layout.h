// Kernels of the table lookup that turns resized bytes into output items: the band's
// interleaved rows are split into one plane per channel, and each plane row is looked up in
// its channel's table as a whole (contiguous bytes in, contiguous items out), so that the
// patch layout afterwards only copies runs of items. layout.cpp holds the portable kernels and
// the x86 ones (SSSE3 deinterleave; AVX-512 VBMI lookup, 64 bytes per table lookup), chosen
// once per frame by layout_kernels. Entries are copied bit for bit, so every kernel gives
// the same bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "simd.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace vlfast {

// A frame's table, as the lookup kernels read it.
struct LookupTable {
    int64_t channels = 0;
    int item_size = 0;
    // Every channel's entries are bytes equal to their index (the compact hand-off's table): a lookup is a copy.
    bool identity = false;
    std::vector<uint32_t> entries;  // channels x kTableSize items of item_size bytes, packed (an aligned copy)
    // The VBMI kernel's: per channel, item_size planes of kTableSize bytes (plane k: byte k of each item).
    std::vector<uint8_t> planes;
};

struct LayoutKernels {
    // Whether `lookup` reads LookupTable::planes.
    bool byte_planes;
    // planes[c * plane_stride + x] = row[x * channels + c] for x < pixels, c < channels.
    void (*deinterleave)(const uint8_t* row, int64_t pixels, int64_t channels, uint8_t* planes, int64_t plane_stride);
    // Item i of dst (item_size bytes) = the table's item (channel, src[i]), for i < n.
    void (*lookup)(const uint8_t* src, int64_t n, const LookupTable& table, int64_t channel, uint8_t* dst);
};

// The kernels of `level`, at most cpu_simd_level(): the x86 ones from AVX2 on (the VBMI lookup at
// the AVX-512 level), else the portable ones.
const LayoutKernels& layout_kernels(SimdLevel level);

// The table `entries` (channels x kTableSize items of item_size bytes) for `kernels`.
LookupTable lookup_table(const uint8_t* entries, int64_t channels, int item_size, const LayoutKernels& kernels);

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
