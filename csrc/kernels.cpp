// Portable row kernels: plain loops, as Pillow's Resample.c writes them. They run where
// the CPU has no AVX2 (kernels_x86.cpp) and are what the SIMD kernels must equal. Also the
// choice between them (row_kernels).
#include "kernels.h"

#include <algorithm>

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

const RowKernels kPortableKernels{false, nullptr, no_scratch, horizontal_rows, vertical_output_row};

const RowKernels& row_kernels(SimdLevel level) {
    switch (level) {
        case SimdLevel::kAvx512: return kAvx512Kernels;
        case SimdLevel::kAvx2: return kAvx2Kernels;
        default: return kPortableKernels;
    }
}

AxisKernel vertical_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels) {
    return {&axis, kernels.simd ? pair_weights(axis) : PairedWeights{}, GatherTables{}};
}

AxisKernel horizontal_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels, int64_t channels) {
    AxisKernel kernel{&axis, kernels.simd ? pair_weights(axis) : PairedWeights{}, GatherTables{}};
    if (kernels.gather != nullptr) kernel.gather = gather_tables(axis, kernel.paired, channels, *kernels.gather);
    return kernel;
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
