// Portable row kernels: plain loops, as Pillow's Resample.c writes them. They run where
// the CPU has no AVX2 (kernels_x86.cpp) and are what the SIMD kernels must equal. Also the
// choice between them (row_kernels).
#include "kernels.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

namespace vlfast {
namespace {

inline uint8_t clip8(int32_t acc, int precision) {
    const int32_t value = acc >> precision;  // arithmetic shift, as the plan says
    return static_cast<uint8_t>(value < 0 ? 0 : (value > 255 ? 255 : value));
}

// With kChannels known, all channels of an output pixel accumulate in one loop over its
// taps; kChannels == 0 takes the channel count at run time and does one channel per loop.
template <int kChannels>
void horizontal_row_impl(const uint8_t* src, uint8_t* dst, const AxisCoefficients& axis, int64_t runtime_channels) {
    constexpr int kLanes = kChannels ? kChannels : 1;
    const int64_t channels = kChannels ? kChannels : runtime_channels;
    const int32_t bias = int32_t{1} << (axis.precision - 1);
    for (int64_t x = 0; x < axis.out_size; ++x) {
        const uint8_t* pixels = src + int64_t{axis.starts[x]} * channels;
        const int32_t* weights = axis.weights + x * axis.taps;
        const int32_t count = axis.counts[x];
        for (int64_t c0 = 0; c0 < channels; c0 += kLanes) {
            int32_t acc[kLanes];
            for (int lane = 0; lane < kLanes; ++lane) acc[lane] = bias;
            for (int32_t k = 0; k < count; ++k) {
                const uint8_t* pixel = pixels + k * channels + c0;
                for (int lane = 0; lane < kLanes; ++lane) acc[lane] += pixel[lane] * weights[k];
            }
            for (int lane = 0; lane < kLanes; ++lane) dst[x * channels + c0 + lane] = clip8(acc[lane], axis.precision);
        }
    }
}

template <int kChannels>
void horizontal_rows_impl(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisCoefficients& axis,
                          int64_t channels) {
    for (int r = 0; r < rows; ++r) horizontal_row_impl<kChannels>(src[r], dst[r], axis, channels);
}

void horizontal_rows(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisKernel& axis,
                     int64_t channels, uint8_t*) {
    const AxisCoefficients& c = *axis.coefficients;
    switch (channels) {
        case 1: return horizontal_rows_impl<1>(src, dst, rows, c, channels);
        case 3: return horizontal_rows_impl<3>(src, dst, rows, c, channels);
        case 4: return horizontal_rows_impl<4>(src, dst, rows, c, channels);
        default: return horizontal_rows_impl<0>(src, dst, rows, c, channels);
    }
}

void vertical_output_row(const uint8_t* const* rows, const AxisKernel& axis, int64_t output, int64_t length,
                         uint8_t* dst) {
    const AxisCoefficients& c = *axis.coefficients;
    vertical_row(rows, c.weights + output * c.taps, c.counts[output], c.precision, length, dst);
}

int64_t no_scratch(const AxisKernel&, int64_t) { return 0; }

}  // namespace

void pack_rgbx_portable(const uint8_t* src, int64_t width, uint8_t* dst) {
    for (int64_t x = 0; x < width; ++x, src += 4, dst += 3) {
        dst[0] = src[0];
        dst[1] = src[1];
        dst[2] = src[2];
    }
}

const RowKernels kPortableKernels{false, nullptr, nullptr, no_scratch, horizontal_rows, vertical_output_row,
                                  pack_rgbx_portable};

const RowKernels& row_kernels(SimdLevel level) {
    switch (level) {
        case SimdLevel::kAvx512: return kAvx512Kernels;
        case SimdLevel::kAvx2: return kAvx2Kernels;
        default: return kPortableKernels;
    }
}

AxisKernel vertical_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels) {
    auto prepared = std::make_shared<PreparedAxis>();
    if (kernels.simd) prepared->paired = pair_weights(axis);
    return {&axis, std::move(prepared)};
}

namespace {

// A horizontal axis prepared for some kernels over rows of some channels, with a copy of what it
// was prepared from.
struct PreparedEntry {
    const RowKernels* kernels;
    int64_t channels, in_size, out_size, taps;
    int precision;
    std::vector<int32_t> starts, counts, weights;
    std::shared_ptr<const PreparedAxis> prepared;

    PreparedEntry(const AxisCoefficients& axis, const RowKernels& kernels, int64_t channels,
                  std::shared_ptr<const PreparedAxis> prepared)
        : kernels(&kernels),
          channels(channels),
          in_size(axis.in_size),
          out_size(axis.out_size),
          taps(axis.taps),
          precision(axis.precision),
          starts(axis.starts, axis.starts + axis.out_size),
          counts(axis.counts, axis.counts + axis.out_size),
          weights(axis.weights, axis.weights + axis.out_size * axis.taps),
          prepared(std::move(prepared)) {}

    bool matches(const AxisCoefficients& axis, const RowKernels& k, int64_t c) const {
        return kernels == &k && channels == c && in_size == axis.in_size && out_size == axis.out_size &&
               taps == axis.taps && precision == axis.precision &&
               std::equal(starts.begin(), starts.end(), axis.starts) &&
               std::equal(counts.begin(), counts.end(), axis.counts) &&
               std::equal(weights.begin(), weights.end(), axis.weights);
    }
};

// Entries each thread keeps, the most recently used first: a few MB at most (4K tables and copies).
constexpr size_t kPreparedEntries = 4;
thread_local std::vector<PreparedEntry> prepared_entries;
thread_local int64_t prepared_hits = 0;

}  // namespace

int64_t prepared_axis_hits() { return prepared_hits; }

AxisKernel horizontal_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels, int64_t channels) {
    if (!kernels.simd) return {&axis, std::make_shared<PreparedAxis>()};
    auto& entries = prepared_entries;
    for (size_t i = 0; i < entries.size(); ++i) {
        if (!entries[i].matches(axis, kernels, channels)) continue;
        std::rotate(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(i),
                    entries.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        ++prepared_hits;
        return {&axis, entries.front().prepared};
    }
    auto prepared = std::make_shared<PreparedAxis>();
    prepared->paired = pair_weights(axis);
    if (kernels.gather != nullptr) prepared->gather = gather_tables(axis, prepared->paired, channels, *kernels.gather);
    if (prepared->gather.groups == 0 && kernels.wide_gather != nullptr)
        prepared->gather = gather_tables(axis, prepared->paired, channels, *kernels.wide_gather);
    if (entries.size() == kPreparedEntries) entries.pop_back();
    entries.insert(entries.begin(), PreparedEntry(axis, kernels, channels, prepared));
    return {&axis, std::move(prepared)};
}

// A chunk of int32 accumulators takes one tap at a time, so every inner loop is
// contiguous. No partial sum can overflow: bindings.cpp bounds the sums of the positive
// and of the negative terms.
void vertical_row(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision, int64_t length,
                  uint8_t* dst) {
    constexpr int64_t kChunk = 2048;
    int32_t acc[kChunk];
    const int32_t bias = int32_t{1} << (precision - 1);
    for (int64_t begin = 0; begin < length; begin += kChunk) {
        const int64_t n = std::min(kChunk, length - begin);
        for (int64_t j = 0; j < n; ++j) acc[j] = bias;
        for (int32_t k = 0; k < count; ++k) {
            const uint8_t* row = rows[k] + begin;
            const int32_t weight = weights[k];
            for (int64_t j = 0; j < n; ++j) acc[j] += row[j] * weight;
        }
        for (int64_t j = 0; j < n; ++j) dst[begin + j] = clip8(acc[j], precision);
    }
}

}  // namespace vlfast
