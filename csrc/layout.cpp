// The lookup kernels of layout.h. The portable ones are plain loops (the lookup's packs its items
// into 8-byte words, on little-endian CPUs); on x86 the deinterleave
// of 3 and 4 channels takes SSSE3 byte shuffles (16 pixels at a time) and, where the CPU has
// AVX-512 VBMI, the lookup takes vpermi2b: a 256-entry byte table is 4 registers, and two
// two-register permutes and a blend on the index's top bit look up 64 bytes at once, once
// per byte of the item; unpacks then interleave those bytes into items. At both x86 levels (AVX2,
// where a lookup costs about a load and a store an item, and AVX-512, where computing measured
// 1.06-1.24x faster than the VBMI lookup: bench/results/cpu-2026-12-08-m167/), the items of a float32,
// bfloat16 or float16 table are computed instead, 8 a time and straight into the patch (compute_patch), where the
// caller gives the table's formula, and only after the formula, computed by the same kernel, has
// given every entry's bits; else copied. So every kernel writes the table's bits. Since a channel's
// values are its 256 bytes, that check proves any arithmetic for every image: where it passes, the
// items are computed in a cheaper, affine form (v * slope + intercept, no division; bfloat16 rounded
// ties away, one add fewer), else with the formula's own arithmetic (one division an item).
#include "layout.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "constants.h"
#include "kernels.h"
#include "x86_target.h"

#if VLFAST_X86
#include <cpuid.h>
#endif

namespace vlfast {
namespace {

void deinterleave_portable(const uint8_t* row, int64_t pixels, int64_t channels, uint8_t* planes,
                           int64_t plane_stride) {
    for (int64_t c = 0; c < channels; ++c) {
        uint8_t* plane = planes + c * plane_stride;
        for (int64_t x = 0; x < pixels; ++x) plane[x] = row[x * channels + c];
    }
}

// Whether the items packed into one 8-byte word land in memory in order (little-endian byte order).
#if (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) || defined(_MSC_VER)
constexpr bool kLittleEndian = true;
#else
constexpr bool kLittleEndian = false;
#endif

template <typename Item>
void lookup_items(const uint8_t* src, int64_t n, const Item* table, uint8_t* dst) {
    int64_t i = 0;
    if constexpr (kLittleEndian) {
        // 8 indices a load, items packed into 8-byte words a store: fewer loads and stores than one of
        // each per item (at the AVX2 level, where this loop is the lookup: 1080p layout 1.09-1.13x).
        constexpr int kPerWord = 8 / static_cast<int>(sizeof(Item));
        for (; i + 8 <= n; i += 8) {
            uint64_t indices;
            std::memcpy(&indices, src + i, 8);
            for (int w = 0; w < 8 / kPerWord; ++w) {
                uint64_t word = 0;
                for (int k = 0; k < kPerWord; ++k)
                    word |= uint64_t{table[(indices >> (8 * (w * kPerWord + k))) & 0xff]} << (8 * sizeof(Item) * k);
                std::memcpy(dst + (i + w * kPerWord) * static_cast<int64_t>(sizeof(Item)), &word, 8);
            }
        }
    }
    Item* out = reinterpret_cast<Item*>(dst);
    for (; i < n; ++i) out[i] = table[src[i]];
}

void lookup_portable(const uint8_t* src, int64_t n, const LookupTable& table, int64_t channel, uint8_t* dst) {
    const uint8_t* entries =
        reinterpret_cast<const uint8_t*>(table.entries.data()) + channel * kTableSize * table.item_size;
    switch (table.item_size) {
        case 1: return lookup_items(src, n, entries, dst);
        case 2: return lookup_items(src, n, reinterpret_cast<const uint16_t*>(entries), dst);
        default: return lookup_items(src, n, reinterpret_cast<const uint32_t*>(entries), dst);
    }
}

const LayoutKernels kPortableLayout{false, deinterleave_portable, lookup_portable, nullptr};

#if VLFAST_X86

// Byte shuffles that gather channel c of 16 pixels from the 16-byte register r of their
// kChannels * 16 bytes: kMasks[c][r][i] = the byte of register r holding pixel i's channel
// c, or 0x80 (zero) where another register holds it.
template <int kChannels>
struct DeinterleaveMasks {
    alignas(16) uint8_t masks[kChannels][kChannels][16];
    DeinterleaveMasks() {
        for (int c = 0; c < kChannels; ++c)
            for (int r = 0; r < kChannels; ++r)
                for (int i = 0; i < 16; ++i) {
                    const int position = i * kChannels + c;
                    masks[c][r][i] = static_cast<uint8_t>(position / 16 == r ? position % 16 : 0x80);
                }
    }
};

template <int kChannels>
VLFAST_SSSE3 void deinterleave_ssse3(const uint8_t* row, int64_t pixels, uint8_t* planes, int64_t plane_stride) {
    static const DeinterleaveMasks<kChannels> table;
    int64_t x = 0;
    for (; x + 16 <= pixels; x += 16) {
        __m128i in[kChannels];
        for (int r = 0; r < kChannels; ++r)
            in[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x * kChannels + 16 * r));
        for (int c = 0; c < kChannels; ++c) {
            __m128i plane = _mm_setzero_si128();
            for (int r = 0; r < kChannels; ++r)
                plane = _mm_or_si128(plane, _mm_shuffle_epi8(in[r], _mm_load_si128(reinterpret_cast<const __m128i*>(
                                                                   table.masks[c][r]))));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + c * plane_stride + x), plane);
        }
    }
    for (; x < pixels; ++x)
        for (int c = 0; c < kChannels; ++c) planes[c * plane_stride + x] = row[x * kChannels + c];
}

void deinterleave_x86(const uint8_t* row, int64_t pixels, int64_t channels, uint8_t* planes, int64_t plane_stride) {
    switch (channels) {
        case 3: return deinterleave_ssse3<3>(row, pixels, planes, plane_stride);
        case 4: return deinterleave_ssse3<4>(row, pixels, planes, plane_stride);
        default: return deinterleave_portable(row, pixels, channels, planes, plane_stride);
    }
}

// Index permutations applied before the lookup so that the in-lane unpacks that build items
// out of byte planes leave them in order (see lookup_vbmi).
struct ItemOrder {
    alignas(64) uint8_t two[64], four[64];
    ItemOrder() {
        for (int lane = 0; lane < 4; ++lane)
            for (int r = 0; r < 4; ++r)
                for (int d = 0; d < 4; ++d) four[lane * 16 + 4 * r + d] = static_cast<uint8_t>(16 * r + 4 * lane + d);
        for (int lane = 0; lane < 4; ++lane)
            for (int r = 0; r < 2; ++r)
                for (int d = 0; d < 8; ++d) two[lane * 16 + 8 * r + d] = static_cast<uint8_t>(32 * r + 8 * lane + d);
    }
};

// Bytes of a 256-entry table (4 registers) at the 64 indices.
// Index bits 0-5 pick a byte of a register, bit 6 one of two registers, bit 7 one of two pairs.
VLFAST_AVX512 inline __m512i lookup_bytes(__m512i index, const __m512i* plane) {
    const __m512i low = _mm512_permutex2var_epi8(plane[0], index, plane[1]);   // entries 0..127
    const __m512i high = _mm512_permutex2var_epi8(plane[2], index, plane[3]);  // entries 128..255
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high);
}

// Items for 64 indices (fewer at the end: n), kItemSize bytes each. The unpacks work within
// 128-bit lanes: with 4-byte items, register r of the result gets, in lane L, the items of
// index positions 16L + 4r .. 16L + 4r + 3, so the indices are permuted first (ItemOrder)
// to put position 16r + 4L + d there; 2-byte items likewise.
template <int kItemSize>
VLFAST_AVX512 void lookup_vbmi_items(const uint8_t* src, int64_t n, const uint8_t* planes, uint8_t* dst) {
    static const ItemOrder order;
    __m512i table[kItemSize][4];
    for (int k = 0; k < kItemSize; ++k)
        for (int q = 0; q < 4; ++q) table[k][q] = _mm512_loadu_si512(planes + k * kTableSize + 64 * q);
    const __m512i permutation = _mm512_loadu_si512(kItemSize == 4 ? order.four : order.two);
    for (int64_t i = 0; i < n; i += 64) {
        const int64_t count = std::min<int64_t>(64, n - i);
        __m512i index = _mm512_maskz_loadu_epi8(first_bits(count), src + i);
        // Every lane kept; the zero-masking form only because GCC's plain one warns (undefined source).
        if (kItemSize > 1) index = _mm512_maskz_permutexvar_epi8(~__mmask64{0}, permutation, index);
        __m512i bytes[kItemSize];
        for (int k = 0; k < kItemSize; ++k) bytes[k] = lookup_bytes(index, table[k]);
        uint8_t* out = dst + i * kItemSize;
        if (kItemSize == 1) {
            _mm512_mask_storeu_epi8(out, first_bits(count), bytes[0]);
        } else if (kItemSize == 2) {
            const __m512i words[2] = {_mm512_unpacklo_epi8(bytes[0], bytes[1]),
                                      _mm512_unpackhi_epi8(bytes[0], bytes[1])};
            for (int r = 0; r < 2; ++r) {
                const int64_t left = std::clamp<int64_t>(count - 32 * r, 0, 32);
                _mm512_mask_storeu_epi16(out + 64 * r, static_cast<__mmask32>(first_bits(left)), words[r]);
            }
        } else {
            const __m512i low = _mm512_unpacklo_epi8(bytes[0], bytes[1]);
            const __m512i high = _mm512_unpackhi_epi8(bytes[0], bytes[1]);
            const __m512i low2 = _mm512_unpacklo_epi8(bytes[2], bytes[3]);
            const __m512i high2 = _mm512_unpackhi_epi8(bytes[2], bytes[3]);
            const __m512i items[4] = {_mm512_unpacklo_epi16(low, low2), _mm512_unpackhi_epi16(low, low2),
                                      _mm512_unpacklo_epi16(high, high2), _mm512_unpackhi_epi16(high, high2)};
            for (int r = 0; r < 4; ++r) {
                const int64_t left = std::clamp<int64_t>(count - 16 * r, 0, 16);
                _mm512_mask_storeu_epi32(out + 64 * r, static_cast<__mmask16>(first_bits(left)), items[r]);
            }
        }
    }
}

void lookup_vbmi(const uint8_t* src, int64_t n, const LookupTable& table, int64_t channel, uint8_t* dst) {
    const uint8_t* planes = table.planes.data() + channel * table.item_size * kTableSize;
    switch (table.item_size) {
        case 1: return lookup_vbmi_items<1>(src, n, planes, dst);
        case 2: return lookup_vbmi_items<2>(src, n, planes, dst);
        default: return lookup_vbmi_items<4>(src, n, planes, dst);
    }
}

// The MXCSR of a fresh thread: round to nearest even, no flush of denormals to zero, every exception
// masked. The formula kernels run under it whatever the calling thread set; its low 6 bits, the
// exception flags, which every inexact division sets, are not control bits and are left alone.
constexpr unsigned kDefaultMxcsr = 0x1f80;
constexpr unsigned kMxcsrFlags = 0x3f;

// The per-channel constants a formula kernel computes with, broadcast (TableFormula, LookupTable::affine).
struct FormulaConstants {
    __m256 scale, mean, std_dev, slope, intercept;
    __m256d scale64;
};

// The float32 of 8 values (int32, 0 to 255): the formula's (TableFormula) or, with kAffine, v * slope +
// intercept (the table's check chose it). No multiply-add is contracted, since the AVX2 target has no FMA.
// (Dividing by a multiply and two multiply-adds, Markstein's way, which rounds as the division does,
// measured the same on the Zen 3 VM: the stores set the pace of float32 items.)
template <bool kFloat64, bool kAffine>
VLFAST_AVX2_F16C_INLINE __m256 formula_values(__m256i values, const FormulaConstants& k) {
    if constexpr (kAffine) return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(values), k.slope), k.intercept);
    __m256 x;
    if constexpr (kFloat64) {
        const __m128 low =
            _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(values)), k.scale64));
        const __m128 high =
            _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(values, 1)), k.scale64));
        x = _mm256_insertf128_ps(_mm256_castps128_ps256(low), high, 1);
    } else {
        x = _mm256_mul_ps(_mm256_cvtepi32_ps(values), k.scale);
    }
    return _mm256_div_ps(_mm256_sub_ps(x, k.mean), k.std_dev);
}

// The bfloat16 bits of 8 floats, one in the low half of each int32, rounded to nearest, ties to even: the
// float's bits + 0x7fff + bit 16, top half; with kTiesAway, ties away from zero: bits + 0x8000 (one add
// fewer; the affine form's, whose check proves no entry is a tie it rounds otherwise). An infinity stays
// one; a NaN (a zero std_dev, an overflowing slope) may not stay one, and the check then rejects the form.
template <bool kTiesAway>
VLFAST_AVX2_F16C_INLINE __m256i bfloat16_bits(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    if constexpr (kTiesAway) return _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x8000)), 16);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd);
    return _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
}

// The float16 bits of 8 floats, rounded to nearest even (the instruction's own rounding, not MXCSR's).
VLFAST_AVX2_F16C_INLINE __m128i float16_bits(__m256 x) { return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT); }

// The bytes of the 8 kKind items of 8 floats: a register's worth for float32, its low half otherwise
// (bfloat16 rounded as bfloat16_bits<kTiesAway>).
template <ItemKind kKind, bool kTiesAway>
VLFAST_AVX2_F16C_INLINE __m256i item_bits(__m256 x) {
    if constexpr (kKind == ItemKind::kFloat32) return _mm256_castps_si256(x);
    if constexpr (kKind == ItemKind::kFloat16) return _mm256_castsi128_si256(float16_bits(x));
    // packus within lanes puts items 0-3 and 4-7 in the low 64 bits of each lane.
    const __m256i top = bfloat16_bits<kTiesAway>(x);
    return _mm256_permute4x64_epi64(_mm256_packus_epi32(top, top), 0x08);
}

// The 16 2-byte kKind items of 16 floats (low: items 0-7), in order.
template <ItemKind kKind, bool kTiesAway>
VLFAST_AVX2_F16C_INLINE __m256i sixteen_items(__m256 low, __m256 high) {
    if constexpr (kKind == ItemKind::kFloat16)
        return _mm256_inserti128_si256(_mm256_castsi128_si256(float16_bits(low)), float16_bits(high), 1);
    // packus interleaves the halves' lanes: items 0-3, 8-11 | 4-7, 12-15; the permute orders them.
    return _mm256_permute4x64_epi64(
        _mm256_packus_epi32(bfloat16_bits<kTiesAway>(low), bfloat16_bits<kTiesAway>(high)), 0xd8);
}

// Bytes first, first + step, ... (8 of them, 4 per 128-bit lane) of 16 bytes in both lanes (`twice`) as
// int32: one in-lane shuffle (index -1 zeroes a byte), where widening a half of a 16-byte register takes a
// lane-crossing one and getting at its upper half another (the Zen 3 VM: compute_patch_items's 16-item rows
// ran on those shuffles).
template <int kFirst, int kStep>
VLFAST_AVX2_F16C_INLINE __m256i widen_bytes(__m256i twice) {
    constexpr auto at = [](int i) { return static_cast<char>(kFirst + kStep * i); };
    return _mm256_shuffle_epi8(twice, _mm256_setr_epi8(at(0), -1, -1, -1, at(1), -1, -1, -1, at(2), -1, -1, -1,
                                                       at(3), -1, -1, -1, at(4), -1, -1, -1, at(5), -1, -1, -1,
                                                       at(6), -1, -1, -1, at(7), -1, -1, -1));
}

// The 16 bfloat16 items of 16 bytes (in both lanes: widen_bytes) in the affine form, rounded ties away
// (bfloat16_bits<true>): the even bytes' floats keep their items in the low halves of the int32s, the odd
// bytes' in the high halves, so one blend puts all 16 in order (no pack, no permute).
VLFAST_AVX2_F16C_INLINE __m256i sixteen_bfloat16_affine(__m256i twice, const FormulaConstants& k) {
    const __m256i half = _mm256_set1_epi32(0x8000);
    const __m256i even =
        _mm256_add_epi32(_mm256_castps_si256(formula_values<false, true>(widen_bytes<0, 2>(twice), k)), half);
    const __m256i odd =
        _mm256_add_epi32(_mm256_castps_si256(formula_values<false, true>(widen_bytes<1, 2>(twice), k)), half);
    return _mm256_blend_epi16(_mm256_srli_epi32(even, 16), odd, 0xaa);
}

// The formula's items of 8 values (formula_values), stored at dst: `count` (1 to 8) of them.
template <ItemKind kKind, bool kTiesAway>
VLFAST_AVX2_F16C_INLINE void store_items(__m256 x, uint8_t* dst, int64_t count) {
    constexpr int64_t kItemSize = kKind == ItemKind::kFloat32 ? 4 : 2;
    const __m256i items = item_bits<kKind, kTiesAway>(x);
    if (count == 8) {
        if constexpr (kItemSize == 4)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), items);
        else
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(items));
        return;
    }
    alignas(32) uint8_t bytes[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(bytes), items);
    std::memcpy(dst, bytes, static_cast<size_t>(count * kItemSize));
}

// One patch computed from byte planes (compute_patch in layout.h), of kKind items: each run of p items as
// 8-item vectors, the last one overlapping the one before where p is not a multiple of 8 (a run shorter
// than 8 is stored in part). 2-byte runs of 9 to 16 items but the last of each channel take 16 items a
// time from 16 bytes, one 32-byte store a slot (half the stores: the assembly's stores set its pace):
// the items past the run land on the next run, written after it, and
// the bytes past it are read from the plane's next items or row, which exist since this run is not the
// plane's last (the caller's planes hold whole rows of at least p bytes).
template <bool kFloat64, bool kAffine, ItemKind kKind>
VLFAST_AVX2_F16C void compute_patch_items(const uint8_t* bytes, int64_t channel_stride, int64_t row_stride,
                                     int64_t channels, int64_t p, int slots, const LookupTable& table,
                                     uint8_t* patch) {
    const unsigned mxcsr = _mm_getcsr();
    const bool other_mode = (mxcsr & ~kMxcsrFlags) != kDefaultMxcsr;
    if (other_mode) _mm_setcsr(kDefaultMxcsr);
    const TableFormula& formula = *table.formula;
    FormulaConstants k{};  // only the form's constants are set and read
    if constexpr (!kAffine) {
        k.scale = _mm256_set1_ps(formula.scale_float32);
        k.scale64 = _mm256_set1_pd(formula.scale);
    }
    constexpr int64_t kItemSize = kKind == ItemKind::kFloat32 ? 4 : 2;
    const int64_t run_bytes = p * kItemSize, slot_bytes = p * run_bytes;
    for (int64_t c = 0; c < channels; ++c) {
        const size_t channel = static_cast<size_t>(c);
        if constexpr (kAffine) {
            k.slope = _mm256_set1_ps(table.slope[channel]);
            k.intercept = _mm256_set1_ps(table.intercept[channel]);
        } else {
            k.mean = _mm256_set1_ps(formula.mean[channel]);
            k.std_dev = _mm256_set1_ps(formula.std_dev[channel]);
        }
        const uint8_t* src = bytes + c * channel_stride;
        uint8_t* dst = patch + c * slots * slot_bytes;
        for (int64_t y = 0; y < p; ++y, src += row_stride, dst += run_bytes) {
            if (kItemSize == 2 && p > 8 && p <= 16 && y + 1 < p) {
                const __m256i twice =
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
                __m256i items;
                if constexpr (kKind == ItemKind::kBfloat16 && kAffine) {
                    items = sixteen_bfloat16_affine(twice, k);
                } else {
                    const __m256 low = formula_values<kFloat64, kAffine>(widen_bytes<0, 1>(twice), k);
                    const __m256 high = formula_values<kFloat64, kAffine>(widen_bytes<8, 1>(twice), k);
                    items = sixteen_items<kKind, kAffine>(low, high);
                }
                for (int slot = 0; slot < slots; ++slot)
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + slot * slot_bytes), items);
                continue;
            }
            if (p < 8) {
                uint64_t packed = 0;
                std::memcpy(&packed, src, static_cast<size_t>(p));
                const __m256i values = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(packed)));
                const __m256 x = formula_values<kFloat64, kAffine>(values, k);
                for (int slot = 0; slot < slots; ++slot) store_items<kKind, kAffine>(x, dst + slot * slot_bytes, p);
                continue;
            }
            for (int64_t i = 0;; i += 8) {
                i = std::min(i, p - 8);
                const __m256i values = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i)));
                const __m256 x = formula_values<kFloat64, kAffine>(values, k);
                for (int slot = 0; slot < slots; ++slot)
                    store_items<kKind, kAffine>(x, dst + slot * slot_bytes + i * kItemSize, 8);
                if (i == p - 8) break;
            }
        }
    }
    if (other_mode) _mm_setcsr(mxcsr);
}

// compute_patch_items for the table's form: v * slope + intercept, or the formula with its rescale.
template <ItemKind kKind>
void compute_patch_kind(const uint8_t* bytes, int64_t channel_stride, int64_t row_stride, int64_t channels,
                        int64_t p, int slots, const LookupTable& table, uint8_t* patch) {
    const auto kernel = table.affine                     ? compute_patch_items<false, true, kKind>
                        : table.formula->scale_in_float64 ? compute_patch_items<true, false, kKind>
                                                          : compute_patch_items<false, false, kKind>;
    kernel(bytes, channel_stride, row_stride, channels, p, slots, table, patch);
}

void compute_patch_avx2(const uint8_t* bytes, int64_t channel_stride, int64_t row_stride, int64_t channels,
                        int64_t p, int slots, const LookupTable& table, uint8_t* patch) {
    switch (table.computed_item) {
        case ItemKind::kFloat32:
            return compute_patch_kind<ItemKind::kFloat32>(bytes, channel_stride, row_stride, channels, p, slots,
                                                          table, patch);
        case ItemKind::kBfloat16:
            return compute_patch_kind<ItemKind::kBfloat16>(bytes, channel_stride, row_stride, channels, p, slots,
                                                           table, patch);
        case ItemKind::kFloat16:
            return compute_patch_kind<ItemKind::kFloat16>(bytes, channel_stride, row_stride, channels, p, slots,
                                                          table, patch);
    }
}

const LayoutKernels kAvx2Layout{false, deinterleave_x86, lookup_portable, compute_patch_avx2};

// CPUID leaf 1, ECX bit 29 (read directly: older compilers' __builtin_cpu_supports has no "f16c").
bool cpu_has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
const LayoutKernels kAvx2LookupLayout{false, deinterleave_x86, lookup_portable, nullptr};  // no F16C
// The AVX-512 level looks up with VBMI what it does not compute (AVX-512 CPUs all have F16C; a VM may hide it).
const LayoutKernels kVbmiLayout{true, deinterleave_x86, lookup_vbmi, compute_patch_avx2};
const LayoutKernels kVbmiLookupLayout{true, deinterleave_x86, lookup_vbmi, nullptr};

#endif

}  // namespace

const LayoutKernels& layout_kernels(SimdLevel level) {
#if VLFAST_X86
    static const bool f16c = cpu_has_f16c();
    switch (level) {  // AVX-512 here includes VBMI; AVX2 implies SSSE3
        case SimdLevel::kAvx512: return f16c ? kVbmiLayout : kVbmiLookupLayout;
        case SimdLevel::kAvx2: return f16c ? kAvx2Layout : kAvx2LookupLayout;
        default: break;
    }
#else
    (void)level;  // always kPortable here
#endif
    return kPortableLayout;
}

namespace {

// How the kernels compute a table's items: which kind of item, with the formula's arithmetic or affine
// (LookupTable::affine, with its constants, one per channel).
struct ComputedForm {
    ItemKind item;
    bool affine = false;
    std::vector<float> slope, intercept;
};

// The affine form of `formula` for `item` items: v * scale / std_dev - mean / std_dev, each constant
// computed in float64 and rounded to float32, under the default floating-point mode whatever the calling
// thread set (the constants the check proves must be the ones the kernel computes with; and no trap).
ComputedForm affine_form(const TableFormula& formula, ItemKind item) {
    ComputedForm form{item, true, {}, {}};
#if VLFAST_X86
    const unsigned mxcsr = _mm_getcsr();
    _mm_setcsr(kDefaultMxcsr);
#endif
    const double scale = formula.scale_in_float64 ? formula.scale : double{formula.scale_float32};
    for (size_t c = 0; c < formula.mean.size(); ++c) {
        form.slope.push_back(static_cast<float>(scale / formula.std_dev[c]));
        form.intercept.push_back(static_cast<float>(-double{formula.mean[c]} / formula.std_dev[c]));
    }
#if VLFAST_X86
    _mm_setcsr(mxcsr);
#endif
    return form;
}

// `table` set to compute its items in `form` with `formula` (LookupTable::formula, computed_item, affine).
void set_computed(LookupTable& table, const TableFormula& formula, const ComputedForm& form) {
    table.formula = formula;
    table.computed_item = form.item;
    table.affine = form.affine;
    table.slope = form.slope;
    table.intercept = form.intercept;
}

// Whether `kernels` computing `table`'s items with `formula` in `form` give every entry's bits. The values
// (per channel) are laid out as patches of p x p, each run of p bytes computed by one of compute_patch's
// paths: runs of 17 bytes as overlapping 8-item vectors, the path of every run longer than 16 items and of
// every 4-byte run of 8 or more; runs of 16 and 9 bytes, for 2-byte items 16 items a time but each
// channel's last run (8-item vectors), twice, the values shifted by 16 the second time, so that each value
// is in a run other than a channel's last in one of the two; runs of 4, fewer than 8 items. So each path
// computes all 256 values.
bool formula_gives_entries(const LookupTable& table, const TableFormula& formula, const ComputedForm& form,
                           const LayoutKernels& kernels) {
    LookupTable computed;
    computed.channels = table.channels;
    computed.item_size = table.item_size;
    set_computed(computed, formula, form);
    const auto* entries = reinterpret_cast<const uint8_t*>(table.entries.data());
    const int64_t item = table.item_size;
    constexpr int64_t kLayouts[][2] = {{17, 0}, {16, 0}, {16, 16}, {9, 0}, {9, 16}, {4, 0}};  // p, shift
    for (const auto& [p, shift] : kLayouts) {
        // Patches of p x p values v = (i + shift) % 256 (i: the value's place in the channel's plane),
        // enough to hold every value, and one run of slack past the last (compute_patch reads up to 16
        // bytes a run).
        const int64_t area = p * p, patches = (kTableSize + area - 1) / area;
        const int64_t plane = patches * area + 16;
        std::vector<uint8_t> bytes(static_cast<size_t>(table.channels * plane));
        for (int64_t c = 0; c < table.channels; ++c)
            for (int64_t i = 0; i < plane; ++i)
                bytes[static_cast<size_t>(c * plane + i)] = static_cast<uint8_t>(i + shift);
        std::vector<uint8_t> items(static_cast<size_t>(table.channels * area * item));
        for (int64_t k = 0; k < patches; ++k) {
            kernels.compute_patch(bytes.data() + k * area, plane, p, table.channels, p, 1, computed, items.data());
            for (int64_t c = 0; c < table.channels; ++c)
                for (int64_t i = 0; i < area; ++i) {
                    const int64_t value = (k * area + i + shift) % kTableSize;
                    if (std::memcmp(items.data() + (c * area + i) * item,
                                    entries + (c * kTableSize + value) * item, static_cast<size_t>(item)) != 0)
                        return false;
                }
        }
    }
    return true;
}

// Whether two formulas hold the same bits (not ==, which makes -0.0 and +0.0 one: a mean of -0.0 can
// give another zero than +0.0 does).
bool same_formula(const TableFormula& a, const TableFormula& b) {
    auto same_bits = [](const auto& x, const auto& y) { return std::memcmp(&x, &y, sizeof(x)) == 0; };
    auto same_values = [](const std::vector<float>& x, const std::vector<float>& y) {
        return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
    };
    return same_bits(a.scale, b.scale) && same_bits(a.scale_float32, b.scale_float32) &&
           a.scale_in_float64 == b.scale_in_float64 && same_values(a.mean, b.mean) &&
           same_values(a.std_dev, b.std_dev);
}

// How `kernels` compute every entry of `table` with `formula`, if they can: float32 items for 4-byte ones;
// bfloat16, else float16, for 2-byte ones; each affine where that gives every entry, else with the formula's
// arithmetic (one division an item, the costlier).
std::optional<ComputedForm> formula_items(const LookupTable& table, const TableFormula& formula,
                                          const LayoutKernels& kernels) {
    if (kernels.compute_patch == nullptr || formula.mean.size() != static_cast<size_t>(table.channels) ||
        formula.std_dev.size() != static_cast<size_t>(table.channels))
        return std::nullopt;
    for (ItemKind kind : {ItemKind::kFloat32, ItemKind::kBfloat16, ItemKind::kFloat16}) {
        if ((kind == ItemKind::kFloat32 ? 4 : 2) != table.item_size) continue;
        for (ComputedForm form : {affine_form(formula, kind), ComputedForm{kind}})
            if (formula_gives_entries(table, formula, form, kernels)) return form;
    }
    return std::nullopt;
}

// formula_items, remembered for the last few tables and formulas this thread checked (the check
// takes ~30 us, a 448x448 frame's layout ~300: a batch's and a video's frames share their table).
std::optional<ComputedForm> checked_formula_items(const LookupTable& table, const TableFormula& formula,
                                                  const LayoutKernels& kernels) {
    struct Check {
        const LayoutKernels* kernels = nullptr;
        LookupTable table;  // channels, item_size and entries; no planes, no formula
        TableFormula formula;
        std::optional<ComputedForm> form;
    };
    thread_local Check checks[4];
    thread_local size_t next = 0;
    for (const Check& check : checks)
        if (check.kernels == &kernels && check.table.channels == table.channels &&
            check.table.item_size == table.item_size && check.table.entries == table.entries &&
            same_formula(check.formula, formula))
            return check.form;
    Check& check = checks[next];
    next = (next + 1) % std::size(checks);
    check.kernels = &kernels;
    check.table.channels = table.channels;
    check.table.item_size = table.item_size;
    check.table.entries = table.entries;
    check.formula = formula;
    check.form = formula_items(table, formula, kernels);
    return check.form;
}

}  // namespace

LookupTable lookup_table(const uint8_t* entries, int64_t channels, int item_size, const LayoutKernels& kernels,
                         const TableFormula* formula) {
    LookupTable table;
    table.channels = channels;
    table.item_size = item_size;
    const int64_t bytes = channels * kTableSize * item_size;
    table.entries.resize(static_cast<size_t>((bytes + 3) / 4));
    std::memcpy(table.entries.data(), entries, static_cast<size_t>(bytes));
    table.identity = item_size == 1;
    for (int64_t i = 0; table.identity && i < bytes; ++i) table.identity = entries[i] == i % kTableSize;
    if (kernels.byte_planes) {
        table.planes.resize(static_cast<size_t>(bytes));
        for (int64_t c = 0; c < channels; ++c)
            for (int k = 0; k < item_size; ++k)
                for (int64_t v = 0; v < kTableSize; ++v)
                    table.planes[(c * item_size + k) * kTableSize + v] = entries[(c * kTableSize + v) * item_size + k];
    }
    if (formula != nullptr && !table.identity) {
        if (const std::optional<ComputedForm> form = checked_formula_items(table, *formula, kernels))
            set_computed(table, *formula, *form);
    }
    return table;
}

}  // namespace vlfast
