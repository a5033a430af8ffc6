// Two-pass fixed-point resize of a uint8 HWC image, fused with the table lookup (or the
// table's formula, layout.h) and the Qwen2-VL patch layout. Everything here trusts its inputs: bindings.cpp validates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vlfast {

// The coefficients of one axis (a vlfast.plans.AxisPlan): output i reads source pixels
// starts[i] .. starts[i] + counts[i] - 1 with weights[i * taps + k].
struct AxisCoefficients {
    int64_t in_size;
    int64_t out_size;
    int64_t taps;       // row stride of `weights`
    int64_t max_count;  // largest entry of `counts`
    int precision;
    const int32_t* starts;
    const int32_t* counts;
    const int32_t* weights;
};

// A uint8 image of height x width x channels with non-negative byte strides.
struct ImageView {
    const uint8_t* data;
    int64_t height;
    int64_t width;
    int64_t channels;
    int64_t stride_y;
    int64_t stride_x;
    int64_t stride_c;
};

// Where the patch rows of one frame go. `out` is C-contiguous with rows of
// channels * temporal_patch_size * patch_size^2 items of `item_size` bytes (1, 2 or 4);
// `table` holds channels x 256 items of the same size, copied bit for bit (or computed where a
// formula gives every one of them, layout.h).
struct PatchTarget {
    uint8_t* out;
    const uint8_t* table;
    int item_size;
    int64_t row_offset;
    int patch_size;
    int merge_size;
    int temporal_patch_size;
    int slot_begin;
    int slot_count;
};

struct TableFormula;  // layout.h

// One frame: `image` resized with the optional axis passes (nullptr: the axis keeps its size) in
// the given order, every byte looked up in the table (or computed with `formula`, the table's, where
// given and the kernels can: layout.h lookup_table), the patch rows written to `target`.
struct FrameJob {
    ImageView image;
    const AxisCoefficients* horizontal;
    const AxisCoefficients* vertical;
    bool vertical_first;
    PatchTarget target;
    const TableFormula* formula = nullptr;
};

// Runs `job`, its patch rows split over up to `num_threads` threads (the caller's thread included;
// a small frame uses fewer).
void run_frame(const FrameJob& job, int num_threads);

// Runs every job, on up to `num_threads` threads. Frames too small to split (one thread each) run
// side by side, a whole frame per thread, then the others one after another, each split over the
// threads; unless a job writes a byte that another reads or writes (other than the temporal slots
// of the same rows): then all run in order, as run_frame one by one would.
void run_frames(const std::vector<FrameJob>& jobs, int num_threads);

// The indices of the jobs run_frames(jobs, num_threads) runs side by side, in order; empty when
// it runs every job on its own (fewer than two small frames or threads, or jobs in conflict).
std::vector<std::size_t> side_by_side(const std::vector<FrameJob>& jobs, int num_threads);

// One axis pass over a whole image whose rows are width * channels contiguous bytes, on
// this thread, with the kernels of simd_level(), into `out` (rows of the resized axis,
// packed the same way). The pass benchmark times it; the tests hold the SIMD kernels to
// the portable ones with it.
void resample_axis(const ImageView& image, const AxisCoefficients& axis, bool vertical, uint8_t* out);

// The window, in bytes, from which the horizontal pass of `axis` over rows of `channels` channels gathers
// each group of output bytes at simd_level() (kernels.h GatherShape: 16 bytes from 64, else from 128, at
// AVX-512; 4 from 16 at AVX2), or 0 where it runs the transposing or the portable kernel. For the tests
// and the benchmarks.
int64_t horizontal_gather_window(const AxisCoefficients& axis, int64_t channels);

}  // namespace vlfast
