// x86-64 kernels: the AVX2 and AVX-512 passes, and the CPU's SIMD level that picks them.
//
// Both passes multiply with madd_epi16: int16 pixels times a pair of int16 weights,
// two taps per instruction summed into int32 (pair_weights; Pillow's 22-bit weights are
// split exactly into two int16 halves, two madds per pair of taps). This replaces a 32-bit
// multiply per tap, which is slow on every x86 core and slower still on AMD's.
//
// The horizontal pass is the costly one in scalar code: its weights change with every
// output pixel, so a row offers nothing contiguous to vectorise. Its weights are the same
// for every row, though, so the AVX2 kernel resamples 8 rows at once, one row per int32
// lane: the 8 rows are transposed (each byte column becomes 8 consecutive bytes), then
// widened into pairs (column j next to column j + channels, the next tap of the same
// channel, for each row: 16 int16), so that every pair of taps is one load, one madd and
// one add for all 8 rows; the result is transposed back. The arithmetic is the plan's,
// lane by lane, so the bytes are the portable kernel's. Where every group of 4 consecutive
// output bytes reads taps within one 16-byte window of the input row (GatherTables, kAvx2Gather;
// with bicubic weights: upscaling, and downscaling by up to 1.2x in RGB rows), it needs no
// transpose: two groups' windows are one register (one 16-byte load each), and each pair of taps
// is one vpshufb with precomputed indices, which leaves the 8 outputs' two taps as int16 pairs,
// one madd and one add. Two rows share each index and weight load; 8 groups make one 32-byte store.
//
// The AVX2 passes are bound by byte shuffles (one execution port on Intel cores). Where the
// CPU has AVX-512 (F, BW, VL, VBMI, VNNI), the AVX-512 kernels do the same arithmetic with fewer
// of them. Their horizontal pass gathers the same way with 16 outputs per 64-byte window
// (kAvx512Gather: upscaling, and downscaling by up to 2.4x in RGB rows): per row, the window is
// one load, and each pair of taps is one zero-masked vpermb with precomputed indices, which leaves
// the 16 outputs' two taps as int16 pairs, and one madd with the outputs' paired weights, fused
// with its add (VNNI's vpdpwssd, which wraps like the separate add). Where a group's taps span more,
// from a 128-byte window (kAvx512WideGather: downscaling by up to 4.8x in RGB rows, as a phone photo
// or a 4K frame to max_pixels of about a million takes), two loads a row and one two-source vpermt2b
// a pair of taps: 1.6-1.9x the transposing pass at 2.6-4.2x down on the model-167 Intel VM
// (bench/results/cpu-2026-12-08-m167/ab-wide-gather/). Other axes take the AVX2
// stages, with transposes that move 64 columns per instruction instead of 16 (one vpermb per
// row putting the columns in order) and a widening that is one two-source byte permute
// (vpermt2b) per two columns, zero bytes included; their sums are the AVX2 kernel's. The
// vertical pass takes 64 outputs per block, also with vpdpwssd.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels.h"
#include "x86_target.h"

namespace vlfast {
namespace {

SimdLevel detect_simd_level() {
#if VLFAST_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi") &&
        __builtin_cpu_supports("avx512vnni"))
        return SimdLevel::kAvx512;
    if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
#endif
    return SimdLevel::kPortable;
}

const SimdLevel kCpuLevel = detect_simd_level();
std::atomic<SimdLevel> level_now{kCpuLevel};

constexpr int kSplitShift = 15;  // PairedWeights: w = high * 2^15 + low

}  // namespace

SimdLevel cpu_simd_level() { return kCpuLevel; }

SimdLevel simd_level() { return level_now.load(std::memory_order_relaxed); }

SimdLevel set_simd_level(SimdLevel cap) {
    level_now.store(std::min(cap, kCpuLevel), std::memory_order_relaxed);
    return simd_level();
}

PairedWeights pair_weights(const AxisCoefficients& axis) {
    PairedWeights paired;
    paired.pairs = (axis.taps + 1) / 2;
    const int32_t* const end = axis.weights + axis.out_size * axis.taps;
    paired.split = std::any_of(axis.weights, end, [](int32_t w) {
        return w < std::numeric_limits<int16_t>::min() || w > std::numeric_limits<int16_t>::max();
    });
    const size_t size = static_cast<size_t>(axis.out_size * paired.pairs);
    paired.low.assign(size, 0);
    if (paired.split) paired.high.assign(size, 0);
    auto pack = [](int32_t first, int32_t second) {
        return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(first)) |
                                    (static_cast<uint32_t>(static_cast<uint16_t>(second)) << 16));
    };
    for (int64_t i = 0; i < axis.out_size; ++i) {
        const int32_t* weights = axis.weights + i * axis.taps;
        for (int32_t k = 0; k < axis.counts[i]; k += 2) {
            const int32_t first = weights[k], second = k + 1 < axis.counts[i] ? weights[k + 1] : 0;
            const size_t at = static_cast<size_t>(i * paired.pairs + k / 2);
            if (!paired.split) {
                paired.low[at] = pack(first, second);
                continue;
            }
            // Arithmetic shifts; bindings.cpp bounds |w| by 2^31 / 255, so the high half is within +-2^8.
            constexpr int32_t kLowMask = (int32_t{1} << kSplitShift) - 1;
            paired.low[at] = pack(first & kLowMask, second & kLowMask);
            paired.high[at] = pack(first >> kSplitShift, second >> kSplitShift);
        }
    }
    return paired;
}

GatherTables gather_tables(const AxisCoefficients& axis, const PairedWeights& paired, int64_t channels,
                           const GatherShape& shape) {
    const int64_t in_length = axis.in_size * channels, out_length = axis.out_size * channels;
    if (in_length < shape.window) return GatherTables{};
    const int64_t store_outputs = shape.store_groups * shape.outputs;
    const int64_t groups = (out_length + store_outputs - 1) / store_outputs * shape.store_groups;
    GatherTables tables;
    tables.window = shape.window;
    // Output byte o = x * channels + c reads input bytes (starts[x] + k) * channels + c, k < counts[x].
    // Output o is output q of its group (counted along, not divided: this runs per frame). `windows`
    // grows as groups fit: nothing is allocated ahead for an axis that turns out not to.
    int64_t first = std::numeric_limits<int64_t>::max(), last = -1;
    for (int64_t x = 0, o = 0, q = 0; x < axis.out_size; ++x)
        for (int64_t c = 0; c < channels; ++c, ++o) {
            first = std::min(first, int64_t{axis.starts[x]} * channels + c);
            last = std::max(last, (int64_t{axis.starts[x]} + axis.counts[x] - 1) * channels + c);
            if (++q != shape.outputs && o != out_length - 1) continue;
            if (last - first >= shape.window) return GatherTables{};  // a group ends here
            // Windows end inside the row (last < in_length, so they still cover the group).
            tables.windows.push_back(std::min(first, in_length - shape.window));
            q = 0;
            first = std::numeric_limits<int64_t>::max();
            last = -1;
        }
    tables.windows.resize(static_cast<size_t>(groups), 0);  // groups past the row's end
    // Pairs up to the longest output's (the plan's weight rows may have more columns).
    const int64_t pairs = (axis.max_count + 1) / 2;
    const int64_t group_bytes = shape.outputs * static_cast<int64_t>(sizeof(int32_t));  // indices, or weights
    const int64_t unit_bytes = shape.lanes * group_bytes;
    tables.groups = groups;
    tables.pairs = pairs;
    tables.pair_bytes = unit_bytes * (paired.split ? 3 : 2);
    tables.entries.assign(static_cast<size_t>(groups / shape.lanes * pairs * tables.pair_bytes), 0);
    constexpr uint8_t kZeroByte = 0x80;  // an index that both byte permutes read as 0
    for (int64_t e = 0; e < groups / shape.lanes * pairs; ++e)
        std::memset(tables.entries.data() + e * tables.pair_bytes, kZeroByte, static_cast<size_t>(unit_bytes));
    const int64_t* const windows = tables.windows.data();
    // Group g's part of its unit's entries (index bytes, low weights, high weights) starts at `group`.
    uint8_t* group = tables.entries.data();
    for (int64_t x = 0, g = 0, q = 0; x < axis.out_size; ++x) {
        const int32_t count = axis.counts[x];
        const int64_t start = axis.starts[x];
        const int32_t* low = paired.low.data() + x * paired.pairs;
        const int32_t* high = paired.split ? paired.high.data() + x * paired.pairs : nullptr;
        for (int64_t c = 0; c < channels; ++c) {
            const int64_t offset = start * channels + c - windows[g];
            uint8_t* entry = group;
            for (int32_t k = 0; k < count; ++k)
                entry[(k / 2) * tables.pair_bytes + 4 * q + 2 * (k % 2)] = static_cast<uint8_t>(offset + k * channels);
            for (int64_t p = 0; p < pairs; ++p, entry += tables.pair_bytes) {
                uint8_t* weights = entry + unit_bytes + q * static_cast<int64_t>(sizeof(int32_t));
                std::memcpy(weights, low + p, sizeof(int32_t));
                if (high != nullptr) std::memcpy(weights + unit_bytes, high + p, sizeof(int32_t));
            }
            if (++q == shape.outputs) {  // the next group: the next lane of this unit, or the next unit
                q = 0;
                ++g;
                group += g % shape.lanes == 0 ? pairs * tables.pair_bytes - (shape.lanes - 1) * group_bytes
                                              : group_bytes;
            }
        }
    }
    return tables;
}

#if VLFAST_X86

namespace {

constexpr int kLanes = kRowsPerGroup;
static_assert(kLanes == 8, "the transposes below move 8 rows");
// One widened column: 8 rows x (the column, its partner) as int16.
constexpr int64_t kPairedColumnBytes = 32;

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
    for (int r = 0; r < 8; ++r) {  // a fixed count, unrolled: d stays in registers
        if (r == rows) break;
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

// Four accumulators of 8 lanes, clipped like store_clipped, as 32 bytes: acc[0]'s 8 lanes first.
VLFAST_AVX2_INLINE void store_clipped4(const __m256i* acc, __m128i shift, uint8_t* dst) {
    const __m256i low = _mm256_packs_epi32(_mm256_sra_epi32(acc[0], shift), _mm256_sra_epi32(acc[1], shift));
    const __m256i high = _mm256_packs_epi32(_mm256_sra_epi32(acc[2], shift), _mm256_sra_epi32(acc[3], shift));
    // Dwords now hold 4 lanes each: acc 0, 1, 2, 3 lanes 0-3, then acc 0, 1, 2, 3 lanes 4-7.
    const __m256i bytes = _mm256_packus_epi16(low, high);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// The sums of output pixel x of the horizontal pass over the widened columns `paired_in`,
// for 8 rows: channels c0 .. c0 + kColumns - 1, all in one loop over the pairs of taps.
// With kPairs > 0, every output takes kPairs pairs (paired.pairs, its widest): those past its count weigh 0
// and read columns past the row's end, inside the scratch's padding (transposing_scratch_bytes).
template <int kColumns, bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void horizontal_sums(const __m256i* paired_in, const AxisCoefficients& axis,
                                        const PairedWeights& paired, int64_t channels, int64_t x, int64_t c0,
                                        __m256i bias, __m256i* acc) {
    const __m256i* pixels = paired_in + int64_t{axis.starts[x]} * channels + c0;
    const int32_t* low = paired.low.data() + x * paired.pairs;
    const int32_t* high = kSplit ? paired.high.data() + x * paired.pairs : nullptr;
    const int32_t pairs = kPairs ? kPairs : (axis.counts[x] + 1) / 2;
    __m256i acc_high[kColumns];
    for (int i = 0; i < kColumns; ++i) {
        acc[i] = bias;
        acc_high[i] = _mm256_setzero_si256();
    }
    for (int32_t p = 0; p < pairs; ++p, pixels += 2 * channels) {
        const __m256i weight = _mm256_set1_epi32(low[p]);
        for (int i = 0; i < kColumns; ++i) {
            const __m256i values = _mm256_load_si256(pixels + i);
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(values, weight));
            if (kSplit)
                acc_high[i] = _mm256_add_epi32(acc_high[i], _mm256_madd_epi16(values, _mm256_set1_epi32(high[p])));
        }
    }
    if (kSplit)
        for (int i = 0; i < kColumns; ++i)
            acc[i] = _mm256_add_epi32(acc[i], _mm256_slli_epi32(acc_high[i], kSplitShift));
}

// The horizontal pass on widened columns: `out` gets out_size * channels columns of 8 bytes.
// With kChannels known, kStep pixels make whole groups of 4 columns, stored 32 bytes at a
// time; otherwise (kChannels == 0) each column is summed and stored alone.
template <int kChannels, bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void resample_lanes(const __m256i* paired_in, uint8_t* out, const AxisCoefficients& axis,
                                       const PairedWeights& paired, int64_t runtime_channels) {
    constexpr int kStep = kChannels == 0 ? 0 : (kChannels % 4 == 0 ? 1 : (kChannels % 2 == 0 ? 2 : 4));
    constexpr int kPixelColumns = kChannels ? kChannels : 1;
    const int64_t channels = kChannels ? kChannels : runtime_channels;
    const __m256i bias = _mm256_set1_epi32(int32_t{1} << (axis.precision - 1));
    const __m128i shift = _mm_cvtsi32_si128(axis.precision);
    int64_t x = 0;
    if constexpr (kStep > 0) {
        for (; x + kStep <= axis.out_size; x += kStep) {
            __m256i acc[kStep * kChannels];
            for (int i = 0; i < kStep; ++i)
                horizontal_sums<kChannels, kSplit, kPairs>(paired_in, axis, paired, channels, x + i, 0, bias,
                                                           acc + i * kChannels);
            for (int i = 0; i < kStep * kChannels; i += 4)
                store_clipped4(acc + i, shift, out + (x * channels + i) * kLanes);
        }
    }
    for (; x < axis.out_size; ++x)
        for (int64_t c = 0; c < channels; c += kPixelColumns) {
            __m256i acc[kPixelColumns];
            horizontal_sums<kPixelColumns, kSplit, 0>(paired_in, axis, paired, channels, x, c, bias, acc);
            for (int i = 0; i < kPixelColumns; ++i) store_clipped(acc[i], shift, out + (x * channels + c + i) * kLanes);
        }
}

// Outputs of at most kMaxFixedPairs pairs of taps (upscaling, and downscaling up to 2x with bicubic) take
// them in fully unrolled loops.
constexpr int kMaxFixedPairs = 4;

// Calls kernel(fixed), a std::integral_constant: the count of pairs of taps, 1 to kMaxFixedPairs, or 0
// (any count, in a loop) for others. The kernels' lambdas carry their level (a lambda does not take its
// enclosing function's).
template <typename Kernel>
VLFAST_INLINE_IN_CALLER void with_pairs(int64_t pairs, const Kernel& kernel) {
    static_assert(kMaxFixedPairs == 4, "the cases below");
    switch (pairs) {
        case 1: return kernel(std::integral_constant<int, 1>{});
        case 2: return kernel(std::integral_constant<int, 2>{});
        case 3: return kernel(std::integral_constant<int, 3>{});
        case 4: return kernel(std::integral_constant<int, 4>{});
        default: return kernel(std::integral_constant<int, 0>{});
    }
}

template <int kChannels, bool kSplit>
VLFAST_AVX2_INLINE void resample_lanes_pairs(const __m256i* paired_in, uint8_t* out, const AxisCoefficients& axis,
                                             const PairedWeights& paired) {
    with_pairs(paired.pairs, [&](auto fixed) VLFAST_AVX2_LAMBDA {
        resample_lanes<kChannels, kSplit, decltype(fixed)::value>(paired_in, out, axis, paired, kChannels);
    });
}

// Calls kernel(split, pairs), both std::integral_constant: whether the weights are split
// (PairedWeights), and with_pairs' count. For the gathering kernels.
template <typename Kernel>
VLFAST_INLINE_IN_CALLER void with_weight_form(bool split, int64_t pairs, const Kernel& kernel) {
    with_pairs(pairs, [&](auto fixed) {
        if (split)
            kernel(std::true_type{}, fixed);
        else
            kernel(std::false_type{}, fixed);
    });
}

template <bool kSplit>
VLFAST_AVX2_INLINE void resample_lanes_channels(const __m256i* paired_in, uint8_t* out, const AxisCoefficients& axis,
                                                const PairedWeights& paired, int64_t channels) {
    switch (channels) {
        case 1: return resample_lanes_pairs<1, kSplit>(paired_in, out, axis, paired);
        case 3: return resample_lanes_pairs<3, kSplit>(paired_in, out, axis, paired);
        case 4: return resample_lanes_pairs<4, kSplit>(paired_in, out, axis, paired);
        default: return resample_lanes<0, kSplit, 0>(paired_in, out, axis, paired, channels);
    }
}

VLFAST_AVX2_INLINE void resample_lanes_any(const __m256i* paired_in, uint8_t* out, const AxisCoefficients& axis,
                                           const PairedWeights& paired, int64_t channels) {
    if (paired.split)
        resample_lanes_channels<true>(paired_in, out, axis, paired, channels);
    else
        resample_lanes_channels<false>(paired_in, out, axis, paired, channels);
}

// Transposed columns (8 bytes each) -> widened columns: column j of 8 rows next to column
// j + channels (the last column where that is past the end: its weight is always 0).
// Columns before `j` are done already.
VLFAST_AVX2_INLINE void widen_pairs(const uint8_t* lanes, int64_t j, int64_t length, int64_t channels,
                                    __m256i* paired) {
    for (; j + 2 + channels <= length; j += 2) {
        const __m128i columns = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lanes + 8 * j));
        const __m128i partners = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lanes + 8 * (j + channels)));
        _mm256_store_si256(paired + j, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(columns, partners)));
        _mm256_store_si256(paired + j + 1, _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(columns, partners)));
    }
    for (; j < length; ++j) {
        const int64_t partner = std::min(j + channels, length - 1);
        const __m128i columns = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(lanes + 8 * j));
        const __m128i partners = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(lanes + 8 * partner));
        _mm256_store_si256(paired + j, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(columns, partners)));
    }
}

// Widened columns past the row's end that resample_lanes may read (kMaxFixedPairs, up to 4 channels).
constexpr int64_t kPaddingColumns = 2 * kMaxFixedPairs * 4;

// The scratch of the transposing horizontal kernels, in this order: widened input columns and their
// padding, transposed input, transposed output.
int64_t transposing_scratch_bytes(const AxisKernel& axis, int64_t channels) {
    const int64_t in_length = axis.coefficients->in_size * channels;
    const int64_t out_length = axis.coefficients->out_size * channels;
    return (in_length + kPaddingColumns) * kPairedColumnBytes + kLanes * (in_length + out_length);
}

struct HorizontalScratch {
    int64_t in_length, out_length;  // bytes of an input and of an output row
    __m256i* paired_in;
    uint8_t* transposed_in;
    uint8_t* transposed_out;

    HorizontalScratch(uint8_t* scratch, const AxisCoefficients& axis, int64_t channels)
        : in_length(axis.in_size * channels),
          out_length(axis.out_size * channels),
          paired_in(reinterpret_cast<__m256i*>(scratch)),
          transposed_in(scratch + (in_length + kPaddingColumns) * kPairedColumnBytes),
          transposed_out(transposed_in + kLanes * in_length) {}
};

// Rows -> transposed columns from column j on (16 at a time, then one by one).
VLFAST_AVX2_INLINE void transpose_in_from(const uint8_t* const* rows, int64_t j, int64_t length, uint8_t* lanes) {
    for (; j + 16 <= length; j += 16) transpose_rows_to_lanes(rows, j, lanes);
    for (; j < length; ++j)
        for (int r = 0; r < kLanes; ++r) lanes[j * kLanes + r] = rows[r][j];
}

// Transposed columns -> the first `rows` rows, from column j on.
VLFAST_AVX2_INLINE void transpose_out_from(const uint8_t* lanes, int64_t j, int64_t length, uint8_t* const* dst,
                                           int rows) {
    for (; j + 16 <= length; j += 16) transpose_lanes_to_rows(lanes, j, dst, rows);
    for (; j < length; ++j)
        for (int r = 0; r < rows; ++r) dst[r][j] = lanes[j * kLanes + r];
}

// `v`, kept in a register: loaded once, it serves every row, where the compiler would otherwise fold
// the load into each row's instruction and read the table again per row (from L2, where the tables
// of a row outgrow L1).
VLFAST_AVX2_INLINE __m256i in_register(__m256i v) {
    asm("" : "+v"(v));
    return v;
}
VLFAST_AVX512_INLINE __m512i in_register(__m512i v) {
    asm("" : "+v"(v));
    return v;
}

// An axis's GatherTables as the gathering kernels read them, copied into locals (as are the row pointers):
// the byte stores may alias anything, so what is read through a pointer would be read again after each.
// A unit is the groups one register gathers (GatherShape::lanes: 2 at AVX2, 1 at AVX-512).
struct GatherView {
    const int64_t* windows;  // per group
    const uint8_t* entries;  // per unit: pairs x pair_bytes (indices, low weights[, high weights]: a register each)
    int64_t pair_bytes;
    int64_t unit_stride;  // pairs x pair_bytes

    static GatherView of(const GatherTables& tables) {
        return {tables.windows.data(), tables.entries.data(), tables.pair_bytes, tables.pairs * tables.pair_bytes};
    }
};

// The sums of gather unit u (kAvx2Gather: groups 2u and 2u + 1, 4 int32 each, one per 128-bit lane)
// of kRows rows, which share its table entries: each row's two windows are one load each, and each
// pair of taps is one vpshufb that puts the two taps of each output in the low bytes of an int16
// pair (index 0x80 zeroes the high ones), then one madd (two with split weights; the high sums
// are shifted into place once, at the end: the wrapped int32 sums are the same).
template <int kRows, bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void gather_sums_avx2(const uint8_t* const* rows, const GatherView& tables, int64_t pairs,
                                         int64_t u, __m256i bias, __m256i* acc) {
    static_assert(kAvx2Gather.lanes == 2 && kAvx2Gather.window == 16, "one window per 128-bit lane");
    const int64_t first = tables.windows[2 * u], second = tables.windows[2 * u + 1];
    __m256i window[kRows], acc_high[kRows];
    for (int r = 0; r < kRows; ++r) {
        const __m128i low_lane = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + first));
        const __m128i high_lane = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + second));
        window[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(low_lane), high_lane, 1);
        acc[r] = bias;
        acc_high[r] = _mm256_setzero_si256();
    }
    const uint8_t* entry = tables.entries + u * tables.unit_stride;
    for (int64_t p = 0; p < (kPairs ? kPairs : pairs); ++p, entry += tables.pair_bytes) {
        const __m256i* block = reinterpret_cast<const __m256i*>(entry);
        const __m256i index = in_register(_mm256_load_si256(block)), low = in_register(_mm256_load_si256(block + 1));
        const __m256i high = kSplit ? in_register(_mm256_load_si256(block + 2)) : low;
        for (int r = 0; r < kRows; ++r) {
            const __m256i values = _mm256_shuffle_epi8(window[r], index);
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(values, low));
            if (kSplit) acc_high[r] = _mm256_add_epi32(acc_high[r], _mm256_madd_epi16(values, high));
        }
    }
    if (kSplit)
        for (int r = 0; r < kRows; ++r) acc[r] = _mm256_add_epi32(acc[r], _mm256_slli_epi32(acc_high[r], kSplitShift));
}

// The output bytes of the 8 groups from group g, in each of kRows rows: one 32-byte store per row
// (through a buffer at the row's end).
template <int kRows, bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void gather_store_avx2(const uint8_t* const* src, uint8_t* const* dst, const GatherView& tables,
                                          int64_t pairs, int64_t g, int64_t out_length, __m256i bias, __m128i shift) {
    constexpr int kUnits = kAvx2Gather.store_groups / kAvx2Gather.lanes;
    constexpr int64_t kStoreBytes = kAvx2Gather.store_groups * kAvx2Gather.outputs;
    static_assert(kUnits == 4 && kStoreBytes == sizeof(__m256i), "store_clipped4: 4 x 8 int32 -> 32 bytes");
    __m256i acc[kRows][kUnits];
    for (int i = 0; i < kUnits; ++i) {
        __m256i sums[kRows];
        gather_sums_avx2<kRows, kSplit, kPairs>(src, tables, pairs, g / kAvx2Gather.lanes + i, bias, sums);
        for (int r = 0; r < kRows; ++r) acc[r][i] = sums[r];
    }
    const int64_t at = g * kAvx2Gather.outputs;
    for (int r = 0; r < kRows; ++r) {
        if (at + kStoreBytes <= out_length) {
            store_clipped4(acc[r], shift, dst[r] + at);
        } else {
            alignas(32) uint8_t tail[kStoreBytes];
            store_clipped4(acc[r], shift, tail);
            std::memcpy(dst[r] + at, tail, static_cast<size_t>(out_length - at));
        }
    }
}

// gather_rows at the AVX2 level: one 32-byte store at a time, two rows at once, each pair of rows from end to
// end: two input and two output streams that the prefetchers follow (the tables, read again for each pair,
// stay in L2). Across all the rows a store at a time, 1080p's pass ran 1.2-1.3x slower on the Zen 3 VM
// (cpu-2026-12-07-milan/ab-gather-rows/).
template <bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void gather_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows,
                                         const AxisCoefficients& axis, const GatherTables& tables, int64_t channels) {
    const GatherView view = GatherView::of(tables);
    const int64_t pairs = tables.pairs, groups = tables.groups, out_length = axis.out_size * channels;
    const __m256i bias = _mm256_set1_epi32(int32_t{1} << (axis.precision - 1));
    const __m128i shift = _mm_cvtsi32_si128(axis.precision);
    int r = 0;
    for (; r + 2 <= rows; r += 2) {
        const uint8_t* const pair_src[2] = {src[r], src[r + 1]};
        uint8_t* const pair_dst[2] = {dst[r], dst[r + 1]};
        for (int64_t g = 0; g < groups; g += kAvx2Gather.store_groups)
            gather_store_avx2<2, kSplit, kPairs>(pair_src, pair_dst, view, pairs, g, out_length, bias, shift);
    }
    if (r < rows)
        for (int64_t g = 0; g < groups; g += kAvx2Gather.store_groups)
            gather_store_avx2<1, kSplit, kPairs>(src + r, dst + r, view, pairs, g, out_length, bias, shift);
}

// RowKernels::horizontal at the AVX2 level: from gather tables where the axis has them, else transposing.
VLFAST_AVX2 void horizontal_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows,
                                      const AxisKernel& kernel, int64_t channels, uint8_t* scratch) {
    const AxisCoefficients& axis = *kernel.coefficients;
    if (kernel.gather().groups > 0) {
        const GatherTables& tables = kernel.gather();
        with_weight_form(kernel.paired().split, tables.pairs, [&](auto split, auto pairs) VLFAST_AVX2_LAMBDA {
            gather_rows_avx2<decltype(split)::value, decltype(pairs)::value>(src, dst, rows, axis, tables, channels);
        });
        return;
    }
    const PairedWeights& paired = kernel.paired();
    // Missing rows repeat the last one: their lanes are computed and never stored.
    const uint8_t* lanes_src[kLanes];
    for (int r = 0; r < kLanes; ++r) lanes_src[r] = src[std::min(r, rows - 1)];

    const HorizontalScratch at(scratch, axis, channels);
    transpose_in_from(lanes_src, 0, at.in_length, at.transposed_in);
    widen_pairs(at.transposed_in, 0, at.in_length, channels, at.paired_in);
    resample_lanes_any(at.paired_in, at.transposed_out, axis, paired, channels);
    transpose_out_from(at.transposed_out, 0, at.out_length, dst, rows);
}

// The source rows of an output row's pairs of taps (rows 2p and 2p + 1) as the vertical kernels read them:
// with kPairs (1 to kMaxFixedPairs) read once for the row into locals, with kPairs 0 (any count) at each
// use. An odd count's last tap pairs with weight 0: any row will do, this one is at hand.
template <int kPairs>
class PairRows {
public:
    PairRows(const uint8_t* const* rows, int32_t count) : rows_(rows), count_(count) {
        for (int32_t p = 0; p < kPairs; ++p) {
            first_[p] = first_of(p);
            second_[p] = second_of(p);
        }
    }
    int32_t pairs() const { return kPairs > 0 ? kPairs : (count_ + 1) / 2; }
    const uint8_t* first(int32_t p) const { return kPairs > 0 ? first_[p] : first_of(p); }
    const uint8_t* second(int32_t p) const { return kPairs > 0 ? second_[p] : second_of(p); }

private:
    const uint8_t* first_of(int32_t p) const { return rows_[2 * p]; }
    const uint8_t* second_of(int32_t p) const { return rows_[std::min(2 * p + 1, count_ - 1)]; }

    static constexpr int kHeld = kPairs > 0 ? kPairs : 1;
    const uint8_t* const* rows_;
    int32_t count_;
    const uint8_t* first_[kHeld];
    const uint8_t* second_[kHeld];
};

// The vertical pass of one output row, 32 outputs a block, in registers across all taps. Rows 2p and
// 2p + 1 are interleaved byte by byte, then widened to int16 against zero: each madd takes a pair of
// taps for 8 outputs. The unpacks stay within 128-bit halves, and the packs at the end undo their order
// exactly, so the 32 bytes come out in place. With kPairs (1 to kMaxFixedPairs: the row's (count + 1) / 2),
// the row pointers and broadcast weights of all pairs are read once for the row, not once a block (the
// byte stores may alias anything, so what was read from memory would be read again after each); with
// kPairs 0, any count, in the runtime loop. 1080p's vertical pass (4 taps) measured 1.27-1.92x faster on
// the Zen 3 VM, build against build (1.27-1.54x with Pillow's split weights).
template <bool kSplit, int kPairs>
VLFAST_AVX2_INLINE void vertical_blocks(const uint8_t* const* rows, int32_t count, const int32_t* low,
                                        const int32_t* high, int precision, int64_t length, uint8_t* dst) {
    constexpr int kHeld = kPairs > 0 ? kPairs : 1;
    const PairRows<kPairs> pair_rows(rows, count);
    __m256i weights[kHeld], weights_high[kHeld];
    auto pair_weight = [&](const int32_t* weights_of, int32_t p) VLFAST_AVX2_LAMBDA {
        return _mm256_set1_epi32(weights_of[p]);
    };
    for (int32_t p = 0; p < kPairs; ++p) {
        weights[p] = pair_weight(low, p);
        if (kSplit) weights_high[p] = pair_weight(high, p);
    }
    const int32_t pairs = pair_rows.pairs();
    const __m256i bias = _mm256_set1_epi32(int32_t{1} << (precision - 1));
    const __m256i zero = _mm256_setzero_si256();
    const __m128i shift = _mm_cvtsi32_si128(precision);
    auto block = [&](int64_t j) VLFAST_AVX2_LAMBDA {
        __m256i acc[4] = {bias, bias, bias, bias};
        __m256i acc_high[4] = {zero, zero, zero, zero};
        for (int32_t p = 0; p < pairs; ++p) {
            const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair_rows.first(p) + j));
            const __m256i second = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair_rows.second(p) + j));
            const __m256i interleaved[2] = {_mm256_unpacklo_epi8(first, second),
                                            _mm256_unpackhi_epi8(first, second)};
            const __m256i values[4] = {
                _mm256_unpacklo_epi8(interleaved[0], zero), _mm256_unpackhi_epi8(interleaved[0], zero),
                _mm256_unpacklo_epi8(interleaved[1], zero), _mm256_unpackhi_epi8(interleaved[1], zero)};
            const __m256i weight = kPairs > 0 ? weights[p] : pair_weight(low, p);
            for (int i = 0; i < 4; ++i) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(values[i], weight));
            if (kSplit) {
                const __m256i weight_high = kPairs > 0 ? weights_high[p] : pair_weight(high, p);
                for (int i = 0; i < 4; ++i)
                    acc_high[i] = _mm256_add_epi32(acc_high[i], _mm256_madd_epi16(values[i], weight_high));
            }
        }
        for (int i = 0; i < 4; ++i) {
            if (kSplit) acc[i] = _mm256_add_epi32(acc[i], _mm256_slli_epi32(acc_high[i], kSplitShift));
            acc[i] = _mm256_sra_epi32(acc[i], shift);
        }
        // acc[i] holds outputs 4i..4i+3 and 16+4i..16+4i+3: the packs put them back in order.
        const __m256i bytes =
            _mm256_packus_epi16(_mm256_packs_epi32(acc[0], acc[1]), _mm256_packs_epi32(acc[2], acc[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), bytes);
    };
    int64_t j = 0;
    for (; j + 32 <= length; j += 32) block(j);
    // The last 32 outputs again: the tail, and some rewritten with the same bytes.
    if (j != length) block(length - 32);
}

template <bool kSplit>
VLFAST_AVX2_INLINE void vertical_row_impl(const uint8_t* const* rows, const AxisCoefficients& axis,
                                          const PairedWeights& paired, int64_t output, int64_t length, uint8_t* dst) {
    const int32_t count = axis.counts[output];
    const int32_t* low = paired.low.data() + output * paired.pairs;
    const int32_t* high = kSplit ? paired.high.data() + output * paired.pairs : nullptr;
    if (length < 32) {  // shorter than one block: the portable loop
        vertical_row(rows, axis.weights + output * axis.taps, count, axis.precision, length, dst);
        return;
    }
    with_pairs((count + 1) / 2, [&](auto fixed) VLFAST_AVX2_LAMBDA {
        vertical_blocks<kSplit, decltype(fixed)::value>(rows, count, low, high, axis.precision, length, dst);
    });
}

// RowKernels::vertical at the AVX2 level.
VLFAST_AVX2 void vertical_row_avx2(const uint8_t* const* rows, const AxisKernel& kernel, int64_t output,
                                   int64_t length, uint8_t* dst) {
    if (kernel.paired().split)
        vertical_row_impl<true>(rows, *kernel.coefficients, kernel.paired(), output, length, dst);
    else
        vertical_row_impl<false>(rows, *kernel.coefficients, kernel.paired(), output, length, dst);
}

// RowKernels::pack_rgbx at the AVX2 level: 8 pixels a step, a byte shuffle in each 128-bit lane (12 bytes
// each) and a dword permute that joins them (24 bytes, stored as 16 + 8); the last 1-8 pixels portable.
VLFAST_AVX2 void pack_rgbx_avx2(const uint8_t* src, int64_t width, uint8_t* dst) {
    const __m256i in_lane = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,  //
                                             0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
    int64_t x = 0;
    for (; x + 8 < width; x += 8) {
        const __m256i pixels = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 4 * x));
        const __m256i packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(pixels, in_lane), join);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 3 * x), _mm256_castsi256_si128(packed));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 3 * x + 16), _mm256_extracti128_si256(packed, 1));
    }
    pack_rgbx_portable(src + 4 * x, width - x, dst + 3 * x);
}

// ---- AVX-512 (F, BW, VL, VBMI, VNNI) ----

// GCC 12's AVX-512 intrinsics start from an undefined vector, which -Wmaybe-uninitialized reports at
// every inlined use (and -Wuninitialized at some shifts', _mm512_slli_epi32 and _mm512_sra_epi32, inlined
// into lambdas): a false positive of those headers, silenced for this section only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// The table entries a tile of gather_rows spans: a third of a 48 KiB L1 (half of a 32 KiB one).
constexpr int64_t kGatherTileBytes = 16384;

// Byte indices of the AVX-512 transposes and widening, computed once.
struct Avx512Indices {
    // Each row before the in-transpose: lane L, position 4q + k takes column 16q + 2L + (0, 1, 8, 9)[k], so that
    // the unpacks' outputs are 8 whole columns each.
    alignas(64) uint8_t rows_in[64];
    // Each row after the out-transpose, whose lane L holds columns 8 * (m / 2) + 2L + m % 2 at position m.
    alignas(64) uint8_t rows_out[64];
    // Widened columns 2i and 2i + 1 of 8 transposed columns (bytes 0-63) and their partners (64-127): byte
    // 4r (+2) of widened column m is row r of column m (of its partner); odd bytes are zeroed (kEvenBytes).
    alignas(64) uint8_t widen[4][64];
    // RGBX -> RGB: byte 3p + c of the packed pixels is byte 4p + c of 16 RGBX pixels (48 bytes; the rest 0).
    alignas(64) uint8_t rgbx[64];

    Avx512Indices() {
        constexpr int kInOrder[4] = {0, 1, 8, 9};
        for (int p = 0; p < 64; ++p) {
            const int lane = p / 16, q = (p % 16) / 4, k = p % 4;
            rows_in[p] = static_cast<uint8_t>(16 * q + 2 * lane + kInOrder[k]);
            rows_out[p] = static_cast<uint8_t>(16 * ((p % 8) / 2) + 2 * (p / 8) + p % 2);
        }
        for (int i = 0; i < 4; ++i)
            for (int b = 0; b < 64; ++b) {
                const int column = 2 * i + b / 32, row = (b % 32) / 4;
                widen[i][b] = static_cast<uint8_t>((b % 4 == 2 ? 64 : 0) + 8 * column + row);
            }
        for (int b = 0; b < 64; ++b) rgbx[b] = static_cast<uint8_t>(b < 48 ? 4 * (b / 3) + b % 3 : 0);
    }
};

const Avx512Indices kAvx512Indices;
// The even bytes of a register: zero-masked byte permutes leave the odd ones 0, widening bytes into int16.
constexpr __mmask64 kEvenBytes = 0x5555555555555555ULL;

// 8 rows x 64 bytes (row r at rows[r] + j) -> 64 transposed columns at lanes + 8 * j: the 16-column transpose
// in each 128-bit lane, on rows whose columns were first put where that leaves 8 whole columns per result.
VLFAST_AVX512_INLINE void transpose_rows_to_lanes_512(const uint8_t* const* rows, int64_t j, uint8_t* lanes) {
    const __m512i order = _mm512_load_si512(kAvx512Indices.rows_in);
    __m512i a[8], b[8], c[8];
    for (int r = 0; r < 8; ++r) a[r] = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(rows[r] + j));
    for (int r = 0; r < 8; r += 2) {
        b[r] = _mm512_unpacklo_epi8(a[r], a[r + 1]);
        b[r + 1] = _mm512_unpackhi_epi8(a[r], a[r + 1]);
    }
    for (int half = 0; half < 8; half += 4) {
        c[half + 0] = _mm512_unpacklo_epi16(b[half + 0], b[half + 2]);
        c[half + 1] = _mm512_unpackhi_epi16(b[half + 0], b[half + 2]);
        c[half + 2] = _mm512_unpacklo_epi16(b[half + 1], b[half + 3]);
        c[half + 3] = _mm512_unpackhi_epi16(b[half + 1], b[half + 3]);
    }
    for (int q = 0; q < 4; ++q) {  // columns 16q..16q+7, then 16q+8..16q+15
        _mm512_storeu_si512(lanes + 8 * (j + 16 * q), _mm512_unpacklo_epi32(c[q], c[q + 4]));
        _mm512_storeu_si512(lanes + 8 * (j + 16 * q + 8), _mm512_unpackhi_epi32(c[q], c[q + 4]));
    }
}

// The inverse: 64 transposed columns at lanes + 8 * j -> the first `rows` of 8 rows x 64 bytes.
VLFAST_AVX512_INLINE void transpose_lanes_to_rows_512(const uint8_t* lanes, int64_t j, uint8_t* const* dst,
                                                      int rows) {
    const __m512i order = _mm512_load_si512(kAvx512Indices.rows_out);
    __m512i a[8], b[8], c[8], d[8];
    for (int q = 0; q < 8; ++q) a[q] = _mm512_loadu_si512(lanes + 8 * (j + 8 * q));
    for (int q = 0; q < 8; q += 2) {
        b[q] = _mm512_unpacklo_epi8(a[q], a[q + 1]);
        b[q + 1] = _mm512_unpackhi_epi8(a[q], a[q + 1]);
    }
    for (int q = 0; q < 8; q += 2) {
        c[q] = _mm512_unpacklo_epi8(b[q], b[q + 1]);
        c[q + 1] = _mm512_unpackhi_epi8(b[q], b[q + 1]);
    }
    for (int half = 0; half < 8; half += 4) {
        d[half + 0] = _mm512_unpacklo_epi32(c[half + 0], c[half + 2]);
        d[half + 1] = _mm512_unpackhi_epi32(c[half + 0], c[half + 2]);
        d[half + 2] = _mm512_unpacklo_epi32(c[half + 1], c[half + 3]);
        d[half + 3] = _mm512_unpackhi_epi32(c[half + 1], c[half + 3]);
    }
    for (int r = 0; r < 8; ++r) {  // a fixed count, unrolled: d stays in registers
        if (r == rows) break;
        const __m512i row =
            (r & 1) ? _mm512_unpackhi_epi64(d[r / 2], d[r / 2 + 4]) : _mm512_unpacklo_epi64(d[r / 2], d[r / 2 + 4]);
        _mm512_storeu_si512(dst[r] + j, _mm512_permutexvar_epi8(order, row));
    }
}

// widen_pairs, 8 columns per step, each pair of widened columns one zero-masked two-source permute.
VLFAST_AVX512_INLINE int64_t widen_pairs_512(const uint8_t* lanes, int64_t length, int64_t channels,
                                             __m256i* paired) {
    int64_t j = 0;
    for (; j + 8 + channels <= length; j += 8) {
        const __m512i columns = _mm512_loadu_si512(lanes + 8 * j);
        const __m512i partners = _mm512_loadu_si512(lanes + 8 * (j + channels));
        for (int i = 0; i < 4; ++i)
            _mm512_store_si512(paired + j + 2 * i,
                               _mm512_maskz_permutex2var_epi8(kEvenBytes, columns,
                                                              _mm512_load_si512(kAvx512Indices.widen[i]), partners));
    }
    return j;
}

// The sums of gather group g (16 int32: kAvx512Gather, or with kWide kAvx512WideGather) of kRows rows,
// which share its table entries: each row's window is one load (two with kWide), and each pair of taps is
// one zero-masked vpermb (with kWide a two-source vpermt2b) that puts the two taps of each output in the
// low bytes of an int16 pair, then one vpdpwssd (two with split weights).
template <int kRows, bool kSplit, int kPairs, bool kWide>
VLFAST_AVX512_INLINE void gather_sums(const uint8_t* const* rows, const GatherView& tables, int64_t pairs,
                                      int64_t g, __m512i bias, __m512i* acc) {
    static_assert(kAvx512Gather.lanes == 1 && kAvx512Gather.window == 64, "one window per register");
    static_assert(kAvx512WideGather.lanes == 1 && kAvx512WideGather.window == 128, "one window per two registers");
    static_assert(kAvx512WideGather.outputs == kAvx512Gather.outputs &&
                      kAvx512WideGather.store_groups == kAvx512Gather.store_groups,
                  "both shapes stored alike (gather_store, gather_rows)");
    __m512i window[kRows], window_high[kRows], acc_high[kRows];
    for (int r = 0; r < kRows; ++r) {
        window[r] = _mm512_loadu_si512(rows[r] + tables.windows[g]);
        if constexpr (kWide) window_high[r] = _mm512_loadu_si512(rows[r] + tables.windows[g] + 64);
        acc[r] = bias;
        acc_high[r] = _mm512_setzero_si512();
    }
    const uint8_t* entry = tables.entries + g * tables.unit_stride;
    for (int64_t p = 0; p < (kPairs ? kPairs : pairs); ++p, entry += tables.pair_bytes) {
        const __m512i* block = reinterpret_cast<const __m512i*>(entry);  // indices, low, high weights
        const __m512i index = _mm512_load_si512(block), low = in_register(_mm512_load_si512(block + 1));
        const __m512i high = kSplit ? in_register(_mm512_load_si512(block + 2)) : low;
        for (int r = 0; r < kRows; ++r) {
            const __m512i values = kWide ? _mm512_maskz_permutex2var_epi8(kEvenBytes, window[r], index, window_high[r])
                                         : _mm512_maskz_permutexvar_epi8(kEvenBytes, index, window[r]);
            acc[r] = _mm512_dpwssd_epi32(acc[r], values, low);
            if (kSplit) acc_high[r] = _mm512_dpwssd_epi32(acc_high[r], values, high);
        }
    }
    if (kSplit)
        for (int r = 0; r < kRows; ++r) acc[r] = _mm512_add_epi32(acc[r], _mm512_slli_epi32(acc_high[r], kSplitShift));
}

// The output bytes of the 4 groups from group g, in each of kRows rows: one masked 64-byte store per
// row (partial at the row's end).
template <int kRows, bool kSplit, int kPairs, bool kWide>
VLFAST_AVX512_INLINE void gather_store(const uint8_t* const* src, uint8_t* const* dst, const GatherView& tables,
                                       int64_t pairs, int64_t g, __mmask64 mask, __m512i bias, __m128i shift) {
    constexpr int kGroups = kAvx512Gather.store_groups;
    static_assert(kGroups == 4 && kAvx512Gather.outputs == 16, "the packs below: 4 x 16 int32 -> 64 bytes");
    // The packs below leave dword d of 128-bit lane L holding outputs 16d + 4L .. 16d + 4L + 3.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i acc[kGroups][kRows];
    for (int i = 0; i < kGroups; ++i) gather_sums<kRows, kSplit, kPairs, kWide>(src, tables, pairs, g + i, bias, acc[i]);
    for (int r = 0; r < kRows; ++r) {
        __m512i clipped[kGroups];
        for (int i = 0; i < kGroups; ++i) clipped[i] = _mm512_sra_epi32(acc[i][r], shift);
        // Saturating packs clamp exactly as the plan's clamp.
        const __m512i bytes = _mm512_packus_epi16(_mm512_packs_epi32(clipped[0], clipped[1]),
                                                  _mm512_packs_epi32(clipped[2], clipped[3]));
        _mm512_mask_storeu_epi8(dst[r] + g * kAvx512Gather.outputs, mask, _mm512_permutexvar_epi32(order, bytes));
    }
}

// The horizontal pass of `rows` rows from gather tables, one 64-byte store at a time, two rows at once, a
// tile of groups (kGatherTileBytes of their table entries) at a time: each pair of rows through the tile,
// then the next pair, so the tile's entries stay in L1 and each row is read in short runs. All the rows a
// store at a time (16 streams) ran 4K's pass 1.2-1.3x slower on the model-167 Intel VM, and each pair of
// rows from end to end (as gather_rows_avx2) ran the downscales up to 1.1x slower there
// (bench/results/cpu-2026-12-08-m167/ab-gather-tile/).
template <bool kSplit, int kPairs, bool kWide>
VLFAST_AVX512_INLINE void gather_rows(const uint8_t* const* src, uint8_t* const* dst, int rows,
                                      const AxisCoefficients& axis, const GatherTables& tables, int64_t channels) {
    const GatherView view = GatherView::of(tables);
    const int64_t pairs = tables.pairs, groups = tables.groups, out_length = axis.out_size * channels;
    const __m512i bias = _mm512_set1_epi32(int32_t{1} << (axis.precision - 1));
    const __m128i shift = _mm_cvtsi32_si128(axis.precision);
    constexpr int64_t kStep = kAvx512Gather.store_groups;
    const int64_t tile = std::max<int64_t>(kStep, kGatherTileBytes / view.unit_stride / kStep * kStep);
    for (int64_t g0 = 0; g0 < groups; g0 += tile) {
        const int64_t g1 = std::min(groups, g0 + tile);
        auto span = [&](const uint8_t* const* span_src, uint8_t* const* span_dst, auto rows_at_once)
                        VLFAST_AVX512_LAMBDA {
            constexpr int kRows = decltype(rows_at_once)::value;
            for (int64_t g = g0; g < g1; g += kStep) {
                const __mmask64 mask = first_bits(out_length - g * kAvx512Gather.outputs);
                gather_store<kRows, kSplit, kPairs, kWide>(span_src, span_dst, view, pairs, g, mask, bias, shift);
            }
        };
        int r = 0;
        for (; r + 2 <= rows; r += 2) {
            const uint8_t* const pair_src[2] = {src[r], src[r + 1]};
            uint8_t* const pair_dst[2] = {dst[r], dst[r + 1]};
            span(pair_src, pair_dst, std::integral_constant<int, 2>{});
        }
        if (r < rows) span(src + r, dst + r, std::integral_constant<int, 1>{});
    }
}

// RowKernels::horizontal at the AVX-512 level: from gather tables where the axis has them, else the
// AVX2 kernel's stages, 64 (transposes) or 8 (widening) columns at a time, then the AVX2 stages for
// what is left.
VLFAST_AVX512 void horizontal_rows_avx512(const uint8_t* const* src, uint8_t* const* dst, int rows,
                                          const AxisKernel& kernel, int64_t channels, uint8_t* scratch) {
    const AxisCoefficients& axis = *kernel.coefficients;
    if (kernel.gather().groups > 0) {
        const GatherTables& tables = kernel.gather();
        with_weight_form(kernel.paired().split, tables.pairs, [&](auto split, auto pairs) VLFAST_AVX512_LAMBDA {
            constexpr bool kSplit = decltype(split)::value;
            constexpr int kPairs = decltype(pairs)::value;
            if (tables.window == kAvx512WideGather.window)
                gather_rows<kSplit, kPairs, true>(src, dst, rows, axis, tables, channels);
            else
                gather_rows<kSplit, kPairs, false>(src, dst, rows, axis, tables, channels);
        });
        return;
    }
    const uint8_t* lanes_src[kLanes];
    for (int r = 0; r < kLanes; ++r) lanes_src[r] = src[std::min(r, rows - 1)];

    const HorizontalScratch at(scratch, axis, channels);
    int64_t j = 0;
    for (; j + 64 <= at.in_length; j += 64) transpose_rows_to_lanes_512(lanes_src, j, at.transposed_in);
    transpose_in_from(lanes_src, j, at.in_length, at.transposed_in);
    j = widen_pairs_512(at.transposed_in, at.in_length, channels, at.paired_in);
    widen_pairs(at.transposed_in, j, at.in_length, channels, at.paired_in);
    resample_lanes_any(at.paired_in, at.transposed_out, axis, kernel.paired(), channels);
    for (j = 0; j + 64 <= at.out_length; j += 64) transpose_lanes_to_rows_512(at.transposed_out, j, dst, rows);
    transpose_out_from(at.transposed_out, j, at.out_length, dst, rows);
}

// vertical_blocks with 64 outputs a block: the same unpacks and packs, four 128-bit lanes at a time, each
// madd fused with its add (vpdpwssd); rows and weights of 1 to kMaxFixedPairs pairs held for the row.
template <bool kSplit, int kPairs>
VLFAST_AVX512_INLINE void vertical_blocks_512(const uint8_t* const* rows, int32_t count, const int32_t* low,
                                              const int32_t* high, int precision, int64_t length, uint8_t* dst) {
    constexpr int kHeld = kPairs > 0 ? kPairs : 1;
    const PairRows<kPairs> pair_rows(rows, count);
    __m512i weights[kHeld], weights_high[kHeld];
    auto pair_weight = [&](const int32_t* weights_of, int32_t p) VLFAST_AVX512_LAMBDA {
        return _mm512_set1_epi32(weights_of[p]);
    };
    for (int32_t p = 0; p < kPairs; ++p) {
        weights[p] = pair_weight(low, p);
        if (kSplit) weights_high[p] = pair_weight(high, p);
    }
    const int32_t pairs = pair_rows.pairs();
    const __m512i bias = _mm512_set1_epi32(int32_t{1} << (precision - 1));
    const __m512i zero = _mm512_setzero_si512();
    const __m128i shift = _mm_cvtsi32_si128(precision);
    auto block = [&](int64_t j) VLFAST_AVX512_LAMBDA {
        __m512i acc[4] = {bias, bias, bias, bias};
        __m512i acc_high[4] = {zero, zero, zero, zero};
        for (int32_t p = 0; p < pairs; ++p) {
            const __m512i first = _mm512_loadu_si512(pair_rows.first(p) + j);
            const __m512i second = _mm512_loadu_si512(pair_rows.second(p) + j);
            const __m512i interleaved[2] = {_mm512_unpacklo_epi8(first, second),
                                            _mm512_unpackhi_epi8(first, second)};
            const __m512i values[4] = {
                _mm512_unpacklo_epi8(interleaved[0], zero), _mm512_unpackhi_epi8(interleaved[0], zero),
                _mm512_unpacklo_epi8(interleaved[1], zero), _mm512_unpackhi_epi8(interleaved[1], zero)};
            const __m512i weight = kPairs > 0 ? weights[p] : pair_weight(low, p);
            for (int i = 0; i < 4; ++i) acc[i] = _mm512_dpwssd_epi32(acc[i], values[i], weight);
            if (kSplit) {
                const __m512i weight_high = kPairs > 0 ? weights_high[p] : pair_weight(high, p);
                for (int i = 0; i < 4; ++i) acc_high[i] = _mm512_dpwssd_epi32(acc_high[i], values[i], weight_high);
            }
        }
        for (int i = 0; i < 4; ++i) {
            if (kSplit) acc[i] = _mm512_add_epi32(acc[i], _mm512_slli_epi32(acc_high[i], kSplitShift));
            acc[i] = _mm512_sra_epi32(acc[i], shift);
        }
        const __m512i bytes =
            _mm512_packus_epi16(_mm512_packs_epi32(acc[0], acc[1]), _mm512_packs_epi32(acc[2], acc[3]));
        _mm512_storeu_si512(dst + j, bytes);
    };
    int64_t j = 0;
    for (; j + 64 <= length; j += 64) block(j);
    if (j != length) block(length - 64);
}

template <bool kSplit>
VLFAST_AVX512_INLINE void vertical_row_impl_512(const uint8_t* const* rows, const AxisCoefficients& axis,
                                                const PairedWeights& paired, int64_t output, int64_t length,
                                                uint8_t* dst) {
    if (length < 64) {  // shorter than one block: the AVX2 kernel
        vertical_row_impl<kSplit>(rows, axis, paired, output, length, dst);
        return;
    }
    const int32_t count = axis.counts[output];
    const int32_t* low = paired.low.data() + output * paired.pairs;
    const int32_t* high = kSplit ? paired.high.data() + output * paired.pairs : nullptr;
    with_pairs((count + 1) / 2, [&](auto fixed) VLFAST_AVX512_LAMBDA {
        vertical_blocks_512<kSplit, decltype(fixed)::value>(rows, count, low, high, axis.precision, length, dst);
    });
}

// RowKernels::vertical at the AVX-512 level.
VLFAST_AVX512 void vertical_row_avx512(const uint8_t* const* rows, const AxisKernel& kernel, int64_t output,
                                       int64_t length, uint8_t* dst) {
    if (kernel.paired().split)
        vertical_row_impl_512<true>(rows, *kernel.coefficients, kernel.paired(), output, length, dst);
    else
        vertical_row_impl_512<false>(rows, *kernel.coefficients, kernel.paired(), output, length, dst);
}

// RowKernels::pack_rgbx at the AVX-512 level: 16 pixels a step, one byte permute, one masked 48-byte store;
// the last 1-16 pixels by masked load, their last X byte left out.
VLFAST_AVX512 void pack_rgbx_avx512(const uint8_t* src, int64_t width, uint8_t* dst) {
    const __m512i order = _mm512_load_si512(kAvx512Indices.rgbx);
    constexpr __mmask64 kRgb48 = (__mmask64{1} << 48) - 1;
    int64_t x = 0;
    for (; x + 16 < width; x += 16)
        _mm512_mask_storeu_epi8(dst + 3 * x, kRgb48, _mm512_permutexvar_epi8(order, _mm512_loadu_si512(src + 4 * x)));
    const int64_t left = width - x;  // 0 (an empty row) to 16
    if (left > 0) {
        const __m512i pixels = _mm512_maskz_loadu_epi8(first_bits(4 * left - 1), src + 4 * x);
        _mm512_mask_storeu_epi8(dst + 3 * x, first_bits(3 * left), _mm512_permutexvar_epi8(order, pixels));
    }
}

#pragma GCC diagnostic pop

}  // namespace

// The SIMD horizontal kernels transpose only axes without gather tables.
int64_t simd_scratch_bytes(const AxisKernel& axis, int64_t channels) {
    return axis.gather().groups > 0 ? 0 : transposing_scratch_bytes(axis, channels);
}

const RowKernels kAvx2Kernels{true,
                              &kAvx2Gather,
                              nullptr,
                              simd_scratch_bytes,
                              horizontal_rows_avx2,
                              vertical_row_avx2,
                              pack_rgbx_avx2};
const RowKernels kAvx512Kernels{true,
                                &kAvx512Gather,
                                &kAvx512WideGather,
                                simd_scratch_bytes,
                                horizontal_rows_avx512,
                                vertical_row_avx512,
                                pack_rgbx_avx512};

#else  // not x86-64: simd_level() is always kPortable, so row_kernels never picks these

const RowKernels kAvx2Kernels{false, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
const RowKernels kAvx512Kernels{false, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

#endif

}  // namespace vlfast
