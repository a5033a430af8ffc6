// The CPU executor of vlfast resample plans, in the manner of Pillow's Resample.c:
// coefficients come precomputed (vlfast/plans.py), each pass is a plain loop over output
// pixels and taps (kernels.cpp, kernels_x86.cpp), and the fixed-point arithmetic is
// exactly the plan's:
//
//     acc = (1 << (precision - 1)) + sum_k src[starts[i] + k] * weights[i][k]     (int32)
//     out = clamp(acc >> precision, 0, 255)
//
// The work unit is one block row (merge_size patch rows): its resized rows are produced into a
// thread-local band (or, with no pass to run on packed rows, read where the image has them), looked
// up in the table a cache-sized chunk at a time (layout.h), then its patches, whose output rows are
// one contiguous stretch, are assembled one by one from runs of table items and written in order.
// Each block row is run by one thread (parallel_items: contiguous runs of them), so threads share
// no output row.
#include "resample.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <tuple>
#include <vector>

#include "constants.h"
#include "kernels.h"
#include "layout.h"
#include "thread_pool.h"
#include "x86_target.h"

namespace vlfast {
namespace {

// Output pixels below which one more thread costs more to start than it saves.
constexpr int64_t kMinPixelsPerThread = 32 * 1024;

// Bytes of table items a chunk of the band may take (Scratch::values): inside L2 with the band
// (measured at 1080p: 24 KB chunks, in L1, cost float32 ~5% more; 160 to 320 KB, all alike). Where
// the items are computed, the chunk (as wide) holds bytes: 1/item_size of this.
constexpr int64_t kChunkValueBytes = 160 * 1024;

// A buffer that is not zero-filled (every byte is written before it is read), aligned to a
// cache line (the AVX2 kernels' scratch takes aligned 32-byte loads).
constexpr std::align_val_t kBufferAlignment{kCacheLine};
struct AlignedDelete {
    void operator()(uint8_t* data) const { ::operator delete[](data, kBufferAlignment); }
};
using Buffer = std::unique_ptr<uint8_t[], AlignedDelete>;

Buffer allocate(int64_t bytes) {
    return Buffer(static_cast<uint8_t*>(
        ::operator new[](static_cast<size_t>(std::max<int64_t>(bytes, 1)), kBufferAlignment)));
}

// Rows a pass produced, in slots of `rows_per_slot` consecutive rows; the group of row r,
// r / rows_per_slot, lives in slot group % slots. With enough slots for the rows of one
// vertical output they never evict each other, and with monotonic plans (all real ones)
// each group is produced once per thread.
class RowCache {
public:
    void reset(int64_t slots, int64_t rows_per_slot, int64_t row_bytes) {
        slots_ = slots;
        rows_per_slot_ = rows_per_slot;
        row_bytes_ = row_bytes;
        storage_ = allocate(slots * rows_per_slot * row_bytes);
        held_.assign(static_cast<size_t>(slots), -1);
    }

    // Row `row`, after produce(first_row, data) has filled its group if the slot held another.
    template <typename Produce>
    const uint8_t* get(int64_t row, Produce produce) {
        const int64_t group = row / rows_per_slot_;
        const int64_t slot = group % slots_;
        uint8_t* data = storage_.get() + slot * rows_per_slot_ * row_bytes_;
        if (held_[slot] != group) {
            produce(group * rows_per_slot_, data);
            held_[slot] = group;
        }
        return data + (row - group * rows_per_slot_) * row_bytes_;
    }

private:
    int64_t slots_ = 0;
    int64_t rows_per_slot_ = 0;
    int64_t row_bytes_ = 0;
    Buffer storage_;
    std::vector<int64_t> held_;
};

// Slots a RowCache needs so that `rows` consecutive rows never evict each other.
int64_t slots_for(int64_t rows, int64_t rows_per_slot) { return (rows + rows_per_slot - 2) / rows_per_slot + 1; }

struct Frame {
    ImageView image;
    const AxisCoefficients* horizontal;
    const AxisCoefficients* vertical;
    bool vertical_first;
    PatchTarget target;
    int64_t out_height;
    int64_t out_width;
    bool packed_rows;  // each source row is width * channels contiguous bytes
    bool rgbx_rows;    // each source row is RGBX (RGB, 4 bytes a pixel: Pillow's RGB images), packed by a kernel
    bool rows_in_place;  // no pass and packed rows: the layout reads the image's rows as they are
    const RowKernels* kernels;  // chosen once for the frame
    AxisKernel horizontal_kernel, vertical_kernel;  // the axes as the kernels take them
    bool streaming;    // the output is written with streaming stores
    const LayoutKernels* layout;  // the lookup (and compute) kernels, chosen once for the frame
    LookupTable table;            // the table as they read it
    int64_t chunk_pixels;         // width of the band's chunks (write_block_row): whole blocks
    SimdLevel layout_level;       // the target write_block_row runs compiled for: the frame's level
};

// Per-thread buffers, allocated before any thread starts so that workers never throw.
struct Scratch {
    Buffer band;    // the resized rows of one block row (none when the frame's rows are read in place)
    Buffer planes;  // one band row of a chunk, a plane per channel
    Buffer values;  // a chunk of the band as table items (bytes, where computed): channel x band row x chunk_pixels
    Buffer patch;   // one patch as table items
    OutputWriter writer;
    Buffer packed[kRowsPerGroup];          // source rows, packed (strided input)
    Buffer vertical[kRowsPerGroup];        // vertical-first: vertically resized rows awaiting the horizontal pass
    Buffer horizontal_scratch;             // the horizontal kernel's
    RowCache rows;                         // rows the vertical pass reads
    std::vector<const uint8_t*> taps;

    explicit Scratch(const Frame& f) : writer(f.streaming) {
        const PatchTarget& t = f.target;
        const int64_t channels = f.image.channels;
        const int64_t in_row = f.image.width * channels, out_row = f.out_width * channels;
        const int64_t band_rows = int64_t{t.merge_size} * t.patch_size;
        if (!f.rows_in_place) band = allocate(band_rows * out_row);
        planes = allocate(channels * f.chunk_pixels);
        values = allocate(channels * band_rows * f.chunk_pixels * t.item_size);
        patch = allocate(channels * t.slot_count * t.patch_size * t.patch_size * t.item_size);
        // Rows packed for the horizontal pass (vertical-first frames pack into `rows`; frames without a
        // pass, into the band).
        if (!f.packed_rows && f.horizontal != nullptr && (f.vertical == nullptr || !f.vertical_first))
            for (Buffer& row : packed) row = allocate(in_row);
        if (f.horizontal != nullptr)
            horizontal_scratch = allocate(f.kernels->horizontal_scratch_bytes(f.horizontal_kernel, channels));
        if (f.vertical == nullptr) return;
        taps.resize(static_cast<size_t>(f.vertical->max_count));
        if (f.horizontal != nullptr && !f.vertical_first) {
            rows.reset(slots_for(f.vertical->max_count, kRowsPerGroup), kRowsPerGroup, out_row);
            return;
        }
        if (f.horizontal != nullptr)
            for (Buffer& row : vertical) row = allocate(in_row);
        if (!f.packed_rows) rows.reset(slots_for(f.vertical->max_count, 1), 1, in_row);
    }
};

// Source row y as width * channels contiguous bytes: in place when the input allows it.
const uint8_t* source_row(const Frame& f, int64_t y, uint8_t* packed) {
    const ImageView& im = f.image;
    const uint8_t* row = im.data + y * im.stride_y;
    if (f.packed_rows) return row;
    if (f.rgbx_rows) {
        f.kernels->pack_rgbx(row, im.width, packed);
        return packed;
    }
    for (int64_t x = 0; x < im.width; ++x)
        for (int64_t c = 0; c < im.channels; ++c) packed[x * im.channels + c] = row[x * im.stride_x + c * im.stride_c];
    return packed;
}

// The horizontal pass of up to kRowsPerGroup rows.
void horizontal_rows(const Frame& f, Scratch& s, const uint8_t* const* src, uint8_t* const* dst, int rows) {
    f.kernels->horizontal(src, dst, rows, f.horizontal_kernel, f.image.channels, s.horizontal_scratch.get());
}

// The vertical pass of output row y, reading its source rows through row(index).
template <typename RowAt>
void vertical_output_row(const Frame& f, Scratch& s, int64_t y, int64_t length, uint8_t* dst, RowAt row) {
    const AxisCoefficients& v = *f.vertical;
    const int32_t count = v.counts[y];
    for (int32_t k = 0; k < count; ++k) s.taps[k] = row(int64_t{v.starts[y]} + k);
    f.kernels->vertical(s.taps.data(), f.vertical_kernel, y, length, dst);
}

// Resized rows first .. first + rows - 1 (rows <= kRowsPerGroup) into dst, both passes in the plan's order.
void resized_rows(const Frame& f, Scratch& s, int64_t first, int rows, uint8_t* const* dst) {
    const ImageView& im = f.image;
    const int64_t in_row = im.width * im.channels, out_row = f.out_width * im.channels;
    const AxisCoefficients* h = f.horizontal;
    if (f.vertical == nullptr) {
        if (h == nullptr) {  // no pass, and rows not packed (else read in place, run_block_rows): packed into dst
            for (int r = 0; r < rows; ++r) source_row(f, first + r, dst[r]);
            return;
        }
        const uint8_t* src[kRowsPerGroup];
        for (int r = 0; r < rows; ++r) src[r] = source_row(f, first + r, s.packed[r].get());
        horizontal_rows(f, s, src, dst, rows);
        return;
    }
    if (h != nullptr && !f.vertical_first) {
        // Horizontal first: the vertical pass reads horizontally resized rows, made a group at a time.
        auto resample_group = [&](int64_t group_first, uint8_t* data) {
            const int group_rows = static_cast<int>(std::min<int64_t>(kRowsPerGroup, im.height - group_first));
            const uint8_t* src[kRowsPerGroup];
            uint8_t* out[kRowsPerGroup];
            for (int r = 0; r < group_rows; ++r) {
                src[r] = source_row(f, group_first + r, s.packed[r].get());
                out[r] = data + r * out_row;
            }
            horizontal_rows(f, s, src, out, group_rows);
        };
        for (int r = 0; r < rows; ++r)
            vertical_output_row(f, s, first + r, out_row, dst[r],
                                [&](int64_t row) { return s.rows.get(row, resample_group); });
        return;
    }
    // Vertical first (or alone): the vertical pass reads source rows.
    auto pack = [&](int64_t row, uint8_t* data) { source_row(f, row, data); };
    auto source = [&](int64_t row) { return f.packed_rows ? im.data + row * im.stride_y : s.rows.get(row, pack); };
    if (h == nullptr) {
        for (int r = 0; r < rows; ++r) vertical_output_row(f, s, first + r, in_row, dst[r], source);
        return;
    }
    uint8_t* vertical[kRowsPerGroup];
    for (int r = 0; r < rows; ++r) {
        vertical[r] = s.vertical[r].get();
        vertical_output_row(f, s, first + r, in_row, vertical[r], source);
    }
    horizontal_rows(f, s, vertical, dst, rows);
}

// The least bytes of one channel's patch in one temporal slot (patch_size^2 items) for which
// write_block_row assembles the patch in one slot and writes each slot the frame fills from it
// (rather than assembling every slot). Build against build on an AMD EPYC of family 25 (Zen 4),
// bench/results/cpu-2026-12-07-genoa/ab-one-slot/: float32 at patch size 14 (784 bytes a slot)
// 1.07-1.08x faster at 1080p on one thread, 1.08-1.18x on two; bfloat16 (392 bytes) mostly slower,
// 0.85-0.95x on one thread.
constexpr int64_t kOneSlotMinBytes = 12 * static_cast<int64_t>(kCacheLine);

// Copies a run of kBytes bytes (0: `bytes`, known only at run time).
template <int kBytes>
VLFAST_INLINE_IN_CALLER void copy_fixed(uint8_t* dst, const uint8_t* src, int64_t bytes) {
    if constexpr (kBytes > 0)
        std::memcpy(dst, src, kBytes);  // a few moves, inlined
    else
        copy_run(dst, src, bytes);
}

// One patch from s.values into s.patch: channel c's runs of patch_size items, one per row, each
// copied into each of `slots` temporal slots. kRunBytes: patch_size * item size where the frame's is one
// of the common ones (fixed-size copies), else 0.
template <int kRunBytes>
VLFAST_INLINE_IN_CALLER void assemble_patch(const uint8_t* values, int64_t channel_stride, int64_t row_stride,
                                             int64_t channels, int64_t p, int slots, int64_t run_bytes,
                                             uint8_t* patch) {
    const int64_t bytes = kRunBytes > 0 ? kRunBytes : run_bytes;
    const int64_t slot_bytes = p * bytes;  // one slot of one channel: patch_size^2 items
    for (int64_t c = 0; c < channels; ++c, values += channel_stride) {
        const uint8_t* src = values;
        uint8_t* dst = patch + c * slots * slot_bytes;
        for (int64_t y = 0; y < p; ++y, src += row_stride, dst += bytes)
            for (int slot = 0; slot < slots; ++slot) copy_fixed<kRunBytes>(dst + slot * slot_bytes, src, bytes);
    }
}

// Writes the patches of block row `block_y` (its merge_size * patch_size resized rows,
// band_row_bytes apart from `band`: s.band, or the image's own rows when they need no pass and are
// packed) as table items, in output order: the block row's output rows are one contiguous stretch.
// The band is taken in chunks of whole blocks (f.chunk_pixels wide, sized to stay in cache): each
// band row of the chunk is split into channel planes and looked up plane row by plane row into
// s.values (channel x band row x chunk items; an identity table's planes are split straight into
// it), then each patch is assembled in s.patch (channels x slot_count x patch_size^2 items) from
// runs of patch_size items, one copy per temporal slot. Where the kernels compute the items (a table
// formula, layout.h), the planes stay bytes in s.values and each patch is computed from them straight
// into s.patch (LayoutKernels::compute_patch), with no looked-up copy of the chunk in between. The
// patch is then written whole when the frame fills every slot, else as one run per channel. Where the
// frame fills more than one slot and one channel's slot is at least kOneSlotMinBytes, the patch is
// assembled in one slot only (channels x patch_size^2 items) and each channel's slot is written from
// it once per slot the frame fills: 1/slot_count of the assembly's copies, for up to two partial
// output lines per slot that the writer merges.
template <int kRunBytes>
VLFAST_INLINE_IN_CALLER void write_block_row(const Frame& f, Scratch& s, int64_t block_y, const uint8_t* band,
                                             int64_t band_row_bytes) {
    const PatchTarget& t = f.target;
    const int64_t channels = f.image.channels, item = t.item_size;
    const int64_t p = t.patch_size, m = t.merge_size, band_rows = p * m;
    const int slots = t.slot_count;
    const int64_t patch_items = p * p;
    const int64_t slot_bytes = patch_items * item;  // one channel's patch in one slot
    const int64_t run_bytes = slots * slot_bytes;   // one channel's slots in a patch
    const bool one_slot = slots > 1 && slot_bytes >= kOneSlotMinBytes;
    const int64_t row_bytes = patch_row_items(channels, t.temporal_patch_size, p) * item;
    const int64_t slot_offset = t.slot_begin * patch_items * item;
    const int64_t channel_offset = t.temporal_patch_size * patch_items * item;
    const bool whole_rows = slots == t.temporal_patch_size;
    const int64_t chunk_pixels = f.chunk_pixels;
    const int64_t value_row_bytes = chunk_pixels * item;
    // Items computed from the bytes (a formula the kernels compute): s.values holds byte planes, each
    // patch is computed from them.
    const bool computed = f.table.formula.has_value();
    // A band row's plane in s.values: the bytes when split straight into it (an identity table's items,
    // or the bytes of computed items), else the looked-up items.
    const int64_t plane_row_bytes = computed || f.table.identity ? chunk_pixels : value_row_bytes;
    const int64_t grid_w = f.out_width / p;
    const LayoutKernels& layout = *f.layout;
    uint8_t* const patch = s.patch.get();
    uint8_t* const planes = s.planes.get();
    uint8_t* const values = s.values.get();
    uint8_t* out_row = t.out + (t.row_offset + block_y * m * grid_w) * row_bytes;
    for (int64_t x0 = 0; x0 < f.out_width; x0 += chunk_pixels) {
        const int64_t width = std::min(chunk_pixels, f.out_width - x0);
        for (int64_t y = 0; y < band_rows; ++y) {
            const uint8_t* row = band + y * band_row_bytes + x0 * channels;
            // The image's own rows: the chunk's part of the next one asked for now, since the hardware
            // prefetchers do not follow band_rows short runs a row apart where the image is wider than a
            // chunk (the 1932x1092 frame, unresized, float32, on one thread: 1.11-1.12x on the Zen 4
            // VM, cpu-2026-12-07-genoa/ab-prefetch/).
#if defined(__GNUC__)
            if (f.rows_in_place && y + 1 < band_rows)
                for (int64_t i = 0; i < width * channels; i += static_cast<int64_t>(kCacheLine))
                    __builtin_prefetch(row + band_row_bytes + i);
#endif
            if (f.table.identity || computed) {  // the planes are the items, or what they are computed from
                uint8_t* plane_row = values + y * plane_row_bytes;
                if (channels > 1)
                    layout.deinterleave(row, width, channels, plane_row, band_rows * plane_row_bytes);
                else
                    std::memcpy(plane_row, row, static_cast<size_t>(width));
                continue;
            }
            const uint8_t* split = row;
            if (channels > 1) {
                layout.deinterleave(row, width, channels, planes, chunk_pixels);
                split = planes;
            }
            for (int64_t c = 0; c < channels; ++c)
                layout.lookup(split + c * chunk_pixels, width, f.table, c,
                              values + (c * band_rows + y) * value_row_bytes);
        }
        for (int64_t block_x = 0; block_x < width / (m * p); ++block_x) {
            for (int64_t merge_y = 0; merge_y < m; ++merge_y) {
                for (int64_t merge_x = 0; merge_x < m; ++merge_x, out_row += row_bytes) {
                    if (computed)
                        layout.compute_patch(values + merge_y * p * plane_row_bytes + (block_x * m + merge_x) * p,
                                             band_rows * plane_row_bytes, plane_row_bytes, channels, p,
                                             one_slot ? 1 : slots, f.table, patch);
                    else
                        assemble_patch<kRunBytes>(
                            values + merge_y * p * value_row_bytes + (block_x * m + merge_x) * p * item,
                            band_rows * value_row_bytes, value_row_bytes, channels, p, one_slot ? 1 : slots,
                            p * item, patch);
                    if (one_slot) {
                        for (int64_t c = 0; c < channels; ++c)
                            for (int k = 0; k < slots; ++k)
                                s.writer.write(out_row + c * channel_offset + slot_offset + k * slot_bytes,
                                               patch + c * slot_bytes, static_cast<size_t>(slot_bytes));
                        continue;
                    }
                    if (whole_rows) {
                        s.writer.write(out_row, patch, static_cast<size_t>(row_bytes));
                        continue;
                    }
                    for (int64_t c = 0; c < channels; ++c)
                        s.writer.write(out_row + c * channel_offset + slot_offset, patch + c * run_bytes,
                                       static_cast<size_t>(run_bytes));
                }
            }
        }
    }
}

// write_block_row with fixed-size copies where patch_size * item size is a common one.
VLFAST_INLINE_IN_CALLER void write_block_row_any(const Frame& f, Scratch& s, int64_t block_y, const uint8_t* band,
                                                 int64_t band_row_bytes) {
    switch (int64_t{f.target.patch_size} * f.target.item_size) {
        case 14: return write_block_row<14>(f, s, block_y, band, band_row_bytes);
        case 28: return write_block_row<28>(f, s, block_y, band, band_row_bytes);
        case 56: return write_block_row<56>(f, s, block_y, band, band_row_bytes);
        case 16: return write_block_row<16>(f, s, block_y, band, band_row_bytes);
        case 32: return write_block_row<32>(f, s, block_y, band, band_row_bytes);
        case 64: return write_block_row<64>(f, s, block_y, band, band_row_bytes);
        default: return write_block_row<0>(f, s, block_y, band, band_row_bytes);
    }
}

#if VLFAST_X86
// The same code compiled for the AVX-512 level: the patch assembly's fixed-size copies take 32-
// and 64-byte moves. Measured at 1080p float32 on one thread (AMD Zen 5): the layout 13% faster,
// the frame 10%; an AVX2 build of it gained nothing measurable at that level.
VLFAST_AVX512 void write_block_row_avx512(const Frame& f, Scratch& s, int64_t block_y, const uint8_t* band,
                                          int64_t band_row_bytes) {
    write_block_row_any(f, s, block_y, band, band_row_bytes);
}
#endif

// The block rows next() hands out (parallel_items), until it returns -1.
void run_block_rows(const Frame& f, Scratch& s, const std::function<int64_t()>& next) {
    const int64_t block_rows = f.target.merge_size * f.target.patch_size;  // resized rows per block row
    for (int64_t block_y; (block_y = next()) >= 0;) {
        const uint8_t* band = s.band.get();
        int64_t band_row_bytes = f.out_width * f.image.channels;
        if (f.rows_in_place) {
            band = f.image.data + block_y * block_rows * f.image.stride_y;
            band_row_bytes = f.image.stride_y;
        } else {
            for (int64_t y = 0; y < block_rows; y += kRowsPerGroup) {
                const int rows = static_cast<int>(std::min<int64_t>(kRowsPerGroup, block_rows - y));
                uint8_t* dst[kRowsPerGroup];
                for (int r = 0; r < rows; ++r) dst[r] = s.band.get() + (y + r) * band_row_bytes;
                resized_rows(f, s, block_y * block_rows + y, rows, dst);
            }
        }
        switch (f.layout_level) {
#if VLFAST_X86
            case SimdLevel::kAvx512: write_block_row_avx512(f, s, block_y, band, band_row_bytes); break;
#endif
            default: write_block_row_any(f, s, block_y, band, band_row_bytes);
        }
    }
    s.writer.finish();
}

// The size of `job`'s frame once resized: an axis without a pass keeps its size.
int64_t resized_height(const FrameJob& job) { return job.vertical ? job.vertical->out_size : job.image.height; }
int64_t resized_width(const FrameJob& job) { return job.horizontal ? job.horizontal->out_size : job.image.width; }

// Block rows of the frame `job` writes: (resized height / block) of them.
int64_t frame_block_rows(const FrameJob& job) {
    return resized_height(job) / (int64_t{job.target.patch_size} * job.target.merge_size);
}

// Threads `job` is split over, at most `num_threads`: no more than it has block rows, or than its
// output pixels pay for, or than the pool runs at once.
int64_t frame_threads(const FrameJob& job, int64_t num_threads) {
    const int64_t by_work = std::max<int64_t>(1, resized_height(job) * resized_width(job) / kMinPixelsPerThread);
    return std::max<int64_t>(1, std::min({num_threads, frame_block_rows(job), by_work, pool_threads()}));
}

// A stretch of memory a job reads (its image, its table) or writes (its rows of the output; `out`,
// `row_bytes` and the slots say which bytes of them).
struct Span {
    uintptr_t begin, end;
    bool written;
    const uint8_t* out;
    int64_t row_bytes, channels;
    int temporal_patch_size, slot_begin, slot_end;
};

// The output rows `job` writes to.
Span written_span(const FrameJob& job) {
    const PatchTarget& t = job.target;
    const int64_t row_bytes = patch_row_items(job.image.channels, t.temporal_patch_size, t.patch_size) * t.item_size;
    const int64_t rows = (resized_height(job) / t.patch_size) * (resized_width(job) / t.patch_size);
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.out + t.row_offset * row_bytes);
    return {begin, begin + static_cast<uintptr_t>(rows * row_bytes), true, t.out, row_bytes, job.image.channels,
            t.temporal_patch_size, t.slot_begin, t.slot_begin + t.slot_count};
}

Span read_span(const uint8_t* data, int64_t bytes) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
    return {begin, begin + static_cast<uintptr_t>(bytes), false, nullptr, 0, 0, 0, 0, 0};
}

// Whether two of `jobs` may not run at once: one writes a byte the other reads or writes, except
// where they write different temporal slots of the same rows of one output in one layout (the frames
// of one clip: the same rows, channels and temporal slots per row, so a slot is the same bytes in both).
bool any_conflict(const std::vector<FrameJob>& jobs) {
    std::vector<Span> spans;
    spans.reserve(3 * jobs.size());
    for (const FrameJob& job : jobs) {
        const ImageView& image = job.image;
        const int64_t last = (image.height - 1) * image.stride_y + (image.width - 1) * image.stride_x +
                             (image.channels - 1) * image.stride_c;
        spans.push_back(written_span(job));
        spans.push_back(read_span(image.data, last + 1));
        spans.push_back(read_span(job.target.table, image.channels * kTableSize * job.target.item_size));
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
        return std::tie(a.begin, a.end, a.written) < std::tie(b.begin, b.end, b.written);
    });
    // One table or image read by many jobs is one span.
    spans.erase(std::unique(spans.begin(), spans.end(),
                            [](const Span& a, const Span& b) {
                                return !a.written && !b.written && a.begin == b.begin && a.end == b.end;
                            }),
                spans.end());
    for (size_t i = 0; i < spans.size(); ++i) {
        for (size_t j = i + 1; j < spans.size() && spans[j].begin < spans[i].end; ++j) {
            const Span &a = spans[i], &b = spans[j];
            if (!a.written && !b.written) continue;
            const bool same_rows = a.written && b.written && a.out == b.out && a.begin == b.begin &&
                                   a.end == b.end && a.row_bytes == b.row_bytes && a.channels == b.channels &&
                                   a.temporal_patch_size == b.temporal_patch_size;
            if (!same_rows || (a.slot_begin < b.slot_end && b.slot_begin < a.slot_end)) return true;
        }
    }
    return false;
}

}  // namespace

void run_frame(const FrameJob& job, int num_threads) {
    const ImageView& image = job.image;
    const PatchTarget& target = job.target;
    Frame f;
    f.image = image;
    f.horizontal = job.horizontal;
    f.vertical = job.vertical;
    f.vertical_first = job.vertical_first;
    f.target = target;
    f.out_height = resized_height(job);
    f.out_width = resized_width(job);
    f.packed_rows = image.stride_c == 1 && image.stride_x == image.channels;
    f.rgbx_rows = image.channels == 3 && image.stride_c == 1 && image.stride_x == 4;
    f.rows_in_place = f.packed_rows && f.horizontal == nullptr && f.vertical == nullptr;
    const SimdLevel level = simd_level();  // once: every kernel of the frame at one level
    f.kernels = &row_kernels(level);
    if (f.horizontal != nullptr)
        f.horizontal_kernel = horizontal_axis_kernel(*f.horizontal, *f.kernels, image.channels);
    if (f.vertical != nullptr) f.vertical_kernel = vertical_axis_kernel(*f.vertical, *f.kernels);
    const Span out = written_span(job);
    f.streaming = use_streaming_stores(reinterpret_cast<uint8_t*>(out.begin), static_cast<size_t>(out.end - out.begin));

    f.layout = &layout_kernels(level);
    f.layout_level = level;
    f.table = lookup_table(target.table, image.channels, target.item_size, *f.layout, job.formula);
    const int64_t block = int64_t{target.patch_size} * target.merge_size;
    const int64_t chunk_blocks = kChunkValueBytes / target.item_size / image.channels / block / block;
    f.chunk_pixels = std::min(f.out_width, std::max<int64_t>(1, chunk_blocks) * block);

    const int64_t threads = frame_threads(job, num_threads);
    std::vector<Scratch> scratch;
    scratch.reserve(static_cast<size_t>(threads));
    for (int64_t i = 0; i < threads; ++i) scratch.emplace_back(f);

    parallel_items(frame_block_rows(job), threads,
                   [&](int64_t slot, const std::function<int64_t()>& next) { run_block_rows(f, scratch[slot], next); });
}

std::vector<size_t> side_by_side(const std::vector<FrameJob>& jobs, int num_threads) {
    std::vector<size_t> small;
    for (size_t i = 0; i < jobs.size(); ++i)
        if (frame_threads(jobs[i], num_threads) == 1) small.push_back(i);
    if (std::min<int64_t>({num_threads, static_cast<int64_t>(small.size()), pool_threads()}) < 2 || any_conflict(jobs))
        small.clear();
    return small;
}

void run_frames(const std::vector<FrameJob>& jobs, int num_threads) {
    const std::vector<size_t> small = side_by_side(jobs, num_threads);
    std::vector<char> ran(jobs.size(), 0);
    if (!small.empty()) {
        // A thread's run_frame(job, 1) never waits for another thread, and what it throws (bad_alloc)
        // is passed to the caller, after every other frame has run.
        std::exception_ptr error;
        std::mutex error_mutex;
        const int64_t count = static_cast<int64_t>(small.size());
        parallel_items(count, std::min<int64_t>({num_threads, count, pool_threads()}),
                       [&](int64_t, const std::function<int64_t()>& next) {
                           for (int64_t i; (i = next()) >= 0;) {
                               try {
                                   run_frame(jobs[small[static_cast<size_t>(i)]], 1);
                               } catch (...) {
                                   const std::lock_guard<std::mutex> lock(error_mutex);
                                   if (!error) error = std::current_exception();
                               }
                           }
                       });
        if (error) std::rethrow_exception(error);
        for (const size_t i : small) ran[i] = 1;
    }
    for (size_t i = 0; i < jobs.size(); ++i)
        if (!ran[i]) run_frame(jobs[i], num_threads);
}

void resample_axis(const ImageView& image, const AxisCoefficients& axis, bool vertical, uint8_t* out) {
    const int64_t channels = image.channels;
    const RowKernels& kernels = row_kernels(simd_level());
    const AxisKernel kernel =
        vertical ? vertical_axis_kernel(axis, kernels) : horizontal_axis_kernel(axis, kernels, channels);
    if (vertical) {
        const int64_t length = image.width * channels;
        std::vector<const uint8_t*> taps(static_cast<size_t>(axis.max_count));
        for (int64_t y = 0; y < axis.out_size; ++y) {
            for (int32_t k = 0; k < axis.counts[y]; ++k)
                taps[k] = image.data + (int64_t{axis.starts[y]} + k) * image.stride_y;
            kernels.vertical(taps.data(), kernel, y, length, out + y * length);
        }
        return;
    }
    const int64_t out_row = axis.out_size * channels;
    const Buffer scratch = allocate(kernels.horizontal_scratch_bytes(kernel, channels));
    for (int64_t first = 0; first < image.height; first += kRowsPerGroup) {
        const int rows = static_cast<int>(std::min<int64_t>(kRowsPerGroup, image.height - first));
        const uint8_t* src[kRowsPerGroup];
        uint8_t* dst[kRowsPerGroup];
        for (int r = 0; r < rows; ++r) {
            src[r] = image.data + (first + r) * image.stride_y;
            dst[r] = out + (first + r) * out_row;
        }
        kernels.horizontal(src, dst, rows, kernel, channels, scratch.get());
    }
}

int64_t horizontal_gather_window(const AxisCoefficients& axis, int64_t channels) {
    const GatherTables& tables = horizontal_axis_kernel(axis, row_kernels(simd_level()), channels).gather();
    return tables.groups > 0 ? tables.window : 0;
}

}  // namespace vlfast
