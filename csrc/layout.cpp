// The lookup kernels of layout.h. The portable ones are plain loops (the lookup's packs its items
// into 8-byte words, on little-endian CPUs); on x86 the deinterleave
// of 3 and 4 channels takes SSSE3 byte shuffles (16 pixels at a time) and, where the CPU has
// AVX-512 VBMI, the lookup takes vpermi2b: a 256-entry byte table is 4 registers, and two
// two-register permutes and a blend on the index's top bit look up 64 bytes at once, once
// per byte of the item; unpacks then interleave those bytes into items. Items are copied,
// never computed, so every kernel writes the table's bits.
#include "layout.h"

#include <algorithm>
#include <cstring>

#include "constants.h"
#include "kernels.h"
#include "x86_target.h"

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

const LayoutKernels kPortableLayout{false, deinterleave_portable, lookup_portable};

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

const LayoutKernels kSsse3Layout{false, deinterleave_x86, lookup_portable};
const LayoutKernels kVbmiLayout{true, deinterleave_x86, lookup_vbmi};

#endif

}  // namespace

const LayoutKernels& layout_kernels(SimdLevel level) {
#if VLFAST_X86
    switch (level) {  // AVX-512 here includes VBMI; AVX2 implies SSSE3
        case SimdLevel::kAvx512: return kVbmiLayout;
        case SimdLevel::kAvx2: return kSsse3Layout;
        default: break;
    }
#else
    (void)level;  // always kPortable here
#endif
    return kPortableLayout;
}

LookupTable lookup_table(const uint8_t* entries, int64_t channels, int item_size, const LayoutKernels& kernels) {
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
    return table;
}

}  // namespace vlfast
