// x86-64 kernels: the AVX2 passes and the runtime switch that picks them.
//
// The horizontal pass is the costly one in scalar code: its weights change with every
// output pixel, so a row offers nothing contiguous to vectorise. Its weights are the same
// for every row, though, so the AVX2 kernel resamples 8 rows at once, one row per int32
// lane: the 8 rows are transposed (each byte column becomes 8 consecutive bytes), every
// tap is then one widening load, one multiply and one add for all 8 rows, and the result
// is transposed back. The arithmetic is the plan's, lane by lane, so the bytes are the
// portable kernel's.
#include <algorithm>
#include <atomic>

#include "kernels.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define VLFAST_X86 1
#include <immintrin.h>
#define VLFAST_AVX2 __attribute__((target("avx2")))
#define VLFAST_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))
#else
#define VLFAST_X86 0
#endif

namespace vlfast {
namespace {

bool cpu_has_avx2() {
#if VLFAST_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

const bool kCpuHasAvx2 = cpu_has_avx2();
std::atomic<bool> simd_on{kCpuHasAvx2};

}  // namespace

bool simd_enabled() { return simd_on.load(std::memory_order_relaxed); }

bool set_simd_enabled(bool enabled) {
    simd_on.store(enabled && kCpuHasAvx2, std::memory_order_relaxed);
    return simd_enabled();
}

#if VLFAST_X86

namespace {

constexpr int kLanes = kRowsPerGroup;
static_assert(kLanes == 8, "the transposes below move 8 rows");

// 8 rows x 16 bytes (row r starts at rows[r] + j) -> 16 columns of 8 bytes at lanes + 8 * j.
VLFAST_AVX2_INLINE void transpose_rows_to_lanes(const uint8_t* const* rows, int64_t j, uint8_t* lanes) {
    __m128i a[8], b[8], c[8];
    for (int r = 0; r < 8; ++r) a[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + j));
    for (int r = 0; r < 8; r += 2) {  // b[r]: rows r, r+1 interleaved, columns 0-7; b[r+1]: columns 8-15
        b[r] = _mm_unpacklo_epi8(a[r], a[r + 1]);
        b[r + 1] = _mm_unpackhi_epi8(a[r], a[r + 1]);
    }
    for (int half = 0; half < 8; half += 4) {  // c[half + q]: 4 rows, columns 4q..4q+3
        c[half + 0] = _mm_unpacklo_epi16(b[half + 0], b[half + 2]);
        c[half + 1] = _mm_unpackhi_epi16(b[half + 0], b[half + 2]);
        c[half + 2] = _mm_unpacklo_epi16(b[half + 1], b[half + 3]);
        c[half + 3] = _mm_unpackhi_epi16(b[half + 1], b[half + 3]);
    }
    for (int q = 0; q < 4; ++q) {  // 8 rows of columns 4q, 4q+1, then of 4q+2, 4q+3
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes + 8 * (j + 4 * q)), _mm_unpacklo_epi32(c[q], c[q + 4]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes + 8 * (j + 4 * q + 2)), _mm_unpackhi_epi32(c[q], c[q + 4]));
    }
}

// The inverse: 16 columns of 8 bytes at lanes + 8 * j -> the first `rows` of 8 rows x 16 bytes.
VLFAST_AVX2_INLINE void transpose_lanes_to_rows(const uint8_t* lanes, int64_t j, uint8_t* const* dst, int rows) {
    __m128i a[8], b[8], c[8], d[8];
    for (int q = 0; q < 8; ++q)  // columns 2q and 2q+1
        a[q] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lanes + 8 * (j + 2 * q)));
    for (int q = 0; q < 8; q += 2) {  // b[q]: columns 2q, 2q+2 interleaved by row; b[q+1]: 2q+1, 2q+3
        b[q] = _mm_unpacklo_epi8(a[q], a[q + 1]);
        b[q + 1] = _mm_unpackhi_epi8(a[q], a[q + 1]);
    }
    for (int q = 0; q < 8; q += 2) {  // c[q]: rows 0-3 x 4 consecutive columns; c[q+1]: rows 4-7
        c[q] = _mm_unpacklo_epi8(b[q], b[q + 1]);
        c[q + 1] = _mm_unpackhi_epi8(b[q], b[q + 1]);
    }
    for (int half = 0; half < 8; half += 4) {  // d[half + i]: rows 2i, 2i+1 x 8 columns
        d[half + 0] = _mm_unpacklo_epi32(c[half + 0], c[half + 2]);
        d[half + 1] = _mm_unpackhi_epi32(c[half + 0], c[half + 2]);
        d[half + 2] = _mm_unpacklo_epi32(c[half + 1], c[half + 3]);
        d[half + 3] = _mm_unpackhi_epi32(c[half + 1], c[half + 3]);
    }
    for (int r = 0; r < rows; ++r) {
        const __m128i row =
            (r & 1) ? _mm_unpackhi_epi64(d[r / 2], d[r / 2 + 4]) : _mm_unpacklo_epi64(d[r / 2], d[r / 2 + 4]);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[r] + j), row);
    }
}

// (acc >> shift) clamped to 0..255, as 8 bytes: saturating packs clamp exactly as the plan's clamp.
VLFAST_AVX2_INLINE void store_clipped(__m256i acc, __m128i shift, uint8_t* dst) {
    const __m256i words = _mm256_packs_epi32(_mm256_sra_epi32(acc, shift), _mm256_setzero_si256());
    const __m256i bytes = _mm256_packus_epi16(words, words);  // lanes 0-3 in dword 0, lanes 4-7 in dword 4
    const __m128i joined = _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), joined);
}

// The horizontal pass on transposed rows: `in` holds in_size * channels columns of 8
// bytes, `out` gets out_size * channels. Like the portable kernel, with kChannels known
// all channels accumulate in one loop over taps.
template <int kChannels>
VLFAST_AVX2_INLINE void resample_lanes(const uint8_t* in, uint8_t* out, const AxisCoefficients& axis,
                                       int64_t runtime_channels) {
    constexpr int kAccumulators = kChannels ? kChannels : 1;
    const int64_t channels = kChannels ? kChannels : runtime_channels;
    const __m256i bias = _mm256_set1_epi32(int32_t{1} << (axis.precision - 1));
    const __m128i shift = _mm_cvtsi32_si128(axis.precision);
    for (int64_t x = 0; x < axis.out_size; ++x) {
        const uint8_t* pixels = in + int64_t{axis.starts[x]} * channels * kLanes;
        const int32_t* weights = axis.weights + x * axis.taps;
        const int32_t count = axis.counts[x];
        for (int64_t c0 = 0; c0 < channels; c0 += kAccumulators) {
            __m256i acc[kAccumulators];
            for (int i = 0; i < kAccumulators; ++i) acc[i] = bias;
            for (int32_t k = 0; k < count; ++k) {
                const __m256i weight = _mm256_set1_epi32(weights[k]);
                const uint8_t* pixel = pixels + (k * channels + c0) * kLanes;
                for (int i = 0; i < kAccumulators; ++i) {
                    const __m128i values = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(pixel + i * kLanes));
                    acc[i] = _mm256_add_epi32(acc[i], _mm256_mullo_epi32(_mm256_cvtepu8_epi32(values), weight));
                }
            }
            for (int i = 0; i < kAccumulators; ++i)
                store_clipped(acc[i], shift, out + (x * channels + c0 + i) * kLanes);
        }
    }
}

}  // namespace

VLFAST_AVX2 void horizontal_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows,
                                      const AxisCoefficients& axis, int64_t channels, uint8_t* transposed_in,
                                      uint8_t* transposed_out) {
    // Missing rows repeat the last one: their lanes are computed and never stored.
    const uint8_t* lanes_src[kLanes];
    for (int r = 0; r < kLanes; ++r) lanes_src[r] = src[std::min(r, rows - 1)];

    const int64_t in_length = axis.in_size * channels, out_length = axis.out_size * channels;
    int64_t j = 0;
    for (; j + 16 <= in_length; j += 16) transpose_rows_to_lanes(lanes_src, j, transposed_in);
    for (; j < in_length; ++j)
        for (int r = 0; r < kLanes; ++r) transposed_in[j * kLanes + r] = lanes_src[r][j];

    if (channels == 3)
        resample_lanes<3>(transposed_in, transposed_out, axis, channels);
    else
        resample_lanes<0>(transposed_in, transposed_out, axis, channels);

    for (j = 0; j + 16 <= out_length; j += 16) transpose_lanes_to_rows(transposed_out, j, dst, rows);
    for (; j < out_length; ++j)
        for (int r = 0; r < rows; ++r) dst[r][j] = transposed_out[j * kLanes + r];
}

// The vertical pass with 32 outputs in registers across all taps: one widening load, one
// multiply and one add per 8 outputs and tap.
VLFAST_AVX2 void vertical_row_avx2(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision,
                                   int64_t length, uint8_t* dst) {
    const int32_t bias = int32_t{1} << (precision - 1);
    const __m128i shift = _mm_cvtsi32_si128(precision);
    int64_t j = 0;
    for (; j + 32 <= length; j += 32) {
        __m256i acc[4];
        for (int i = 0; i < 4; ++i) acc[i] = _mm256_set1_epi32(bias);
        for (int32_t k = 0; k < count; ++k) {
            const __m256i weight = _mm256_set1_epi32(weights[k]);
            const uint8_t* row = rows[k] + j;
            for (int i = 0; i < 4; ++i) {
                const __m128i values = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * i));
                acc[i] = _mm256_add_epi32(acc[i], _mm256_mullo_epi32(_mm256_cvtepu8_epi32(values), weight));
            }
        }
        for (int i = 0; i < 4; ++i) acc[i] = _mm256_sra_epi32(acc[i], shift);
        // Saturating packs clamp to 0..255 and leave dwords in the order 0, 2, 4, 6, 1, 3, 5, 7.
        const __m256i bytes =
            _mm256_packus_epi16(_mm256_packs_epi32(acc[0], acc[1]), _mm256_packs_epi32(acc[2], acc[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                            _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    for (; j < length; ++j) {
        int32_t acc = bias;
        for (int32_t k = 0; k < count; ++k) acc += rows[k][j] * weights[k];
        acc >>= precision;
        dst[j] = static_cast<uint8_t>(acc < 0 ? 0 : (acc > 255 ? 255 : acc));
    }
}

#else  // not x86-64: simd_enabled() is always false

void horizontal_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisCoefficients& axis,
                          int64_t channels, uint8_t*, uint8_t*) {
    for (int r = 0; r < rows; ++r) horizontal_row(src[r], dst[r], axis, channels);
}

void vertical_row_avx2(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision, int64_t length,
                       uint8_t* dst) {
    vertical_row(rows, weights, count, precision, length, dst);
}

#endif

}  // namespace vlfast
