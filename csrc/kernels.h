// Row kernels of the two passes, and the output writer. kernels.cpp holds the portable
// kernels, kernels_x86.cpp the AVX2 and AVX-512 ones (resample.cpp picks them once per frame:
// row_kernels), output_writer.cpp the writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "resample.h"
#include "simd.h"

namespace vlfast {

// Bytes of a cache line: the alignment of the buffers the kernels load whole lines of, and the unit
// of the output writer's streaming stores.
constexpr size_t kCacheLine = 64;

// Rows handed to horizontal_rows at once: the AVX2 kernel puts one row in each int32 lane.
constexpr int kRowsPerGroup = 8;

// An axis's weights in the form the SIMD kernels multiply with madd_epi16 on int16
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

// The geometry of a gathering horizontal kernel: an output row is cut into groups of `outputs`
// consecutive bytes whose taps all lie in one window of `window` input bytes (one 128-bit lane of a
// register, one register, or two, looked up with a byte permute); `lanes` groups share a register, each
// in a 128-bit lane of its own, and one store writes `store_groups` groups.
struct GatherShape {
    int64_t outputs;
    int64_t window;
    int64_t lanes;
    int64_t store_groups;
};

// The AVX-512 kernel: 16 outputs (int32) per register from a 64-byte window (vpermb), 64 bytes a store;
// where a group's taps span more, from a 128-byte window (two registers, vpermt2b).
inline constexpr GatherShape kAvx512Gather{16, 64, 1, 4};
inline constexpr GatherShape kAvx512WideGather{16, 128, 1, 4};
// The AVX2 kernel: 4 outputs per 128-bit lane from a 16-byte window (vpshufb), 32 bytes a store.
inline constexpr GatherShape kAvx2Gather{4, 16, 2, 8};

// Allocates whole cache lines: the gathering kernels load table entries a register (32 or 64 bytes)
// at a time, aligned.
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLine})); }
    void deallocate(T* data, size_t) { ::operator delete(data, std::align_val_t{kCacheLine}); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

// A horizontal axis in the form a gathering kernel (GatherShape) takes it where it can: every tap of
// each group of `outputs` consecutive output bytes lies in one window of `window` input bytes
// (with bicubic weights in RGB rows: upscaling, and downscaling by up to 2.4x for the AVX-512 shape, 4.8x
// for its wide one, 1.2x for the AVX2 one). Groups come in units of `lanes` (one register). For each unit and pair of
// taps p, `entries` holds three (two if not split) blocks of lanes * outputs * 4 bytes, each block
// group by group (one register): the index bytes (output q's taps 2p and 2p + 1, as offsets into its
// group's window, at bytes 4q and 4q + 2; 0x80 elsewhere, which vpshufb reads as zero, so that the
// taps widen into int16 pairs; the AVX-512 kernel's vpermb and vpermt2b zero the odd bytes by mask and
// read byte 0 for the unused even ones), then the outputs' PairedWeights `low`, then `high` if split.
// Taps past an output's count weigh 0. `groups` is 0 where some group's taps do not fit one window,
// or the row is shorter than one.
struct GatherTables {
    int64_t window = 0;      // the shape's window
    int64_t groups = 0;      // whole stores' worth (store_groups), zero-weighted past the row
    int64_t pairs = 0;       // pairs of taps of the longest output
    int64_t pair_bytes = 0;  // bytes of one pair of one unit in `entries` (a multiple of the register's)
    // The first input byte of each group's window: no window runs past the row's end (it starts
    // earlier instead).
    std::vector<int64_t> windows;
    std::vector<uint8_t, CacheLineAllocator<uint8_t>> entries;  // units x pairs x pair_bytes
};

// The GatherTables of a horizontal axis over rows of `channels` interleaved channels, for `shape`.
GatherTables gather_tables(const AxisCoefficients& axis, const PairedWeights& paired, int64_t channels,
                           const GatherShape& shape);

// What the SIMD kernels take of an axis besides its coefficients: their pair_weights (empty for
// the portable kernels) and, for a gathering horizontal kernel, their gather_tables.
struct PreparedAxis {
    PairedWeights paired;
    GatherTables gather;
};

// One axis as the row kernels take it: the plan's coefficients and their PreparedAxis (shared:
// horizontal ones are kept for the next frames the thread that prepared them starts, horizontal_axis_kernel).
struct AxisKernel {
    const AxisCoefficients* coefficients = nullptr;
    std::shared_ptr<const PreparedAxis> prepared;

    const PairedWeights& paired() const { return prepared->paired; }
    const GatherTables& gather() const { return prepared->gather; }
};

// The row kernels of one frame, chosen once (row_kernels): the portable ones, which are
// the definition, or the AVX2 or AVX-512 ones, which must give the same bytes.
struct RowKernels {
    // Whether the kernels take paired weights (AxisKernel::paired) and scratch.
    bool simd;
    // The shape of the gather tables (AxisKernel::gather) `horizontal` takes where an axis has them;
    // nullptr where it takes none. Where an axis does not fit it, `wide_gather` (nullptr: none) is tried.
    const GatherShape* gather;
    const GatherShape* wide_gather;
    // Bytes of scratch `horizontal` needs per call (32-byte aligned) for `axis` over rows of `channels`
    // channels: 0 where it needs none (the portable kernel; the SIMD ones on gather tables).
    int64_t (*horizontal_scratch_bytes)(const AxisKernel& axis, int64_t channels);
    // Horizontal pass of up to kRowsPerGroup rows: in_size * channels bytes -> out_size * channels bytes each.
    void (*horizontal)(const uint8_t* const* src, uint8_t* const* dst, int rows, const AxisKernel& axis,
                       int64_t channels, uint8_t* scratch);
    // Vertical pass of output row `output`: its counts[output] source rows of `length` bytes, weighted, into dst.
    void (*vertical)(const uint8_t* const* rows, const AxisKernel& axis, int64_t output, int64_t length,
                     uint8_t* dst);
    // An RGBX row (Pillow's RGB images: `width` pixels of 4 bytes, the 4th unused) packed as RGB into
    // dst (width * 3 bytes). Reads no byte past the last pixel's third: a view's memory may end there.
    void (*pack_rgbx)(const uint8_t* src, int64_t width, uint8_t* dst);
};

// The portable RowKernels::pack_rgbx, also the SIMD ones' tail.
void pack_rgbx_portable(const uint8_t* src, int64_t width, uint8_t* dst);

// The portable kernels (kernels.cpp).
extern const RowKernels kPortableKernels;
// The AVX2 and AVX-512 kernels (kernels_x86.cpp); only run them at their simd_level().
extern const RowKernels kAvx2Kernels;
extern const RowKernels kAvx512Kernels;
// The kernels of `level`, at most cpu_simd_level() (a frame reads simd_level() once, for all its
// kernels).
const RowKernels& row_kernels(SimdLevel level);
// The AxisKernel of a vertical axis for `kernels`.
AxisKernel vertical_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels);
// The AxisKernel of a horizontal axis over rows of `channels` channels for `kernels`. The thread
// starting the frame (the caller, or a pool worker running small frames side by side) keeps the
// last few it prepared for SIMD kernels, by content (level, channels and every
// coefficient), and hands them out again: their gather tables take 60-150 us to build at 1080p to
// 4K, before a frame's threads start, and a video's frames or a batch of one size share an axis.
AxisKernel horizontal_axis_kernel(const AxisCoefficients& axis, const RowKernels& kernels, int64_t channels);
// How many times horizontal_axis_kernel found an axis prepared on this thread (for the tests).
int64_t prepared_axis_hits();

// The portable vertical pass of one output row (the one scalar loop; the AVX2 kernel
// takes it for rows shorter than its block).
void vertical_row(const uint8_t* const* rows, const int32_t* weights, int32_t count, int precision, int64_t length,
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
