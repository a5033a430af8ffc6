// Row kernels of the two passes, and the output writer. kernels.cpp holds the portable
// kernels, kernels_x86.cpp the AVX2 ones (resample.cpp picks per frame: simd_enabled()),
// output_writer.cpp the writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "resample.h"

namespace vlfast {

// Rows handed to horizontal_rows at once: the AVX2 kernel puts one row in each int32 lane.
constexpr int kRowsPerGroup = 8;

// Horizontal pass of one row: in_size * channels bytes -> out_size * channels bytes.
void horizontal_row(const uint8_t* src, uint8_t* dst, const AxisCoefficients& axis, int64_t channels);

// Vertical pass of one output row: `count` rows of `length` bytes, weighted, into dst.
void vertical_row(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision, int64_t length,
                  uint8_t* dst);

// Whether the AVX2 kernels run: true on CPUs that have AVX2 unless turned off.
bool simd_enabled();
// Turns the AVX2 kernels on or off (tests cover both); returns simd_enabled().
bool set_simd_enabled(bool enabled);

// An axis's weights in the form the AVX2 kernels multiply with _mm256_madd_epi16 on int16
// pixels: the taps of output i in pairs, pair p holding weight 2p in the low 16 bits and
// weight 2p + 1 in the high 16 bits of an int32 (an odd count pairs its last tap with 0),
// `pairs` per output. Weights that all fit in int16 (torch's, by construction) are paired as
// they are. Others (Pillow's 22-bit ones) are split exactly, w = high * 2^15 + low with low
// in 0..2^15 - 1: `low` and `high` are both paired, and the sum of the products is
// (sum_high << 15) + sum_low. Partial sums of that may wrap around in int32; the total
// cannot (bindings.cpp bounds it), so the wrapped arithmetic gives exactly the plan's sum.
struct PairedWeights {
    int64_t pairs = 0;
    bool split = false;
    std::vector<int32_t> low, high;  // out_size * pairs each; `high` is empty unless split
};

PairedWeights pair_weights(const AxisCoefficients& axis);

// Bytes of scratch horizontal_rows_avx2 needs per call for rows of in_length and out_length bytes.
int64_t horizontal_avx2_scratch_bytes(int64_t in_length, int64_t out_length);

// Horizontal pass of up to kRowsPerGroup rows with the AVX2 kernel; `scratch` holds
// horizontal_avx2_scratch_bytes, 32-byte aligned. Only call when simd_enabled().
void horizontal_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisCoefficients& axis,
                          const PairedWeights& paired, int64_t channels, uint8_t* scratch);

// vertical_row with the AVX2 kernel: `paired` is the axis's pair_weights and `output` the
// index of the output row. Only call when simd_enabled().
void vertical_row_avx2(const uint8_t* const* rows, const AxisCoefficients& axis, const PairedWeights& paired,
                       int64_t output, int64_t length, uint8_t* dst);

// Writes the output run by run. With `streaming`, whole 64-byte lines go out with
// streaming stores (where the CPU has them): the output is written once and read by
// someone else later, so it should neither evict the working set nor be read from memory
// before being overwritten. Bytes of a line that a contiguous stretch of runs covers only
// in part are written with ordinary stores, since other threads may own the rest of it.
class OutputWriter {
public:
    explicit OutputWriter(bool streaming) : streaming_(streaming) {}
    void write(uint8_t* dst, const uint8_t* src, size_t bytes);
    // Writes what is pending and makes this thread's stores visible to other threads.
    void finish();

private:
    void write_pending();

    alignas(64) uint8_t line_[64];
    bool streaming_;
    uint8_t* line_dst_ = nullptr;  // output line that line_ assembles, nullptr if none
    size_t begin_ = 0;             // line_[begin_, end_) holds the bytes written to it so far
    size_t end_ = 0;
};

// Whether streaming stores should write [begin, begin + bytes): only where the CPU has them
// and most of its pages are already in memory. Fresh pages fault on first touch, and that
// costs several times more under streaming stores than under ordinary ones.
bool use_streaming_stores(const uint8_t* begin, size_t bytes);

}  // namespace vlfast
