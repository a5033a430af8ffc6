// Row kernels of the two passes, and the output writer. kernels.cpp holds the portable
// kernels, kernels_x86.cpp the AVX2 ones (resample.cpp picks per frame: simd_enabled()),
// output_writer.cpp the writer.
#pragma once

#include <cstddef>
#include <cstdint>

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

// Horizontal pass of up to kRowsPerGroup rows with the AVX2 kernel. `transposed_in` and
// `transposed_out` are scratch of kRowsPerGroup * in_size * channels and
// kRowsPerGroup * out_size * channels bytes. Only call when simd_enabled().
void horizontal_rows_avx2(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisCoefficients& axis,
                          int64_t channels, uint8_t* transposed_in, uint8_t* transposed_out);

// vertical_row with the AVX2 kernel. Only call when simd_enabled().
void vertical_row_avx2(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision, int64_t length,
                       uint8_t* dst);

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
