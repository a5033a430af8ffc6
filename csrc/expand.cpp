// expand_patches: each row looked up channel by channel with the layout's lookup kernel
// (layout.h), into a row buffer whose first temporal slot is copied to the others, then
// written out whole (streaming stores where they pay, as the frames' rows).
#include "expand.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "constants.h"
#include "kernels.h"
#include "layout.h"
#include "thread_pool.h"

namespace vlfast {
namespace {

// Rows below which one more thread costs more than it saves.
constexpr int64_t kMinRowsPerThread = 512;

// Rows a thread takes at a time (parallel_items).
constexpr int64_t kRowsPerItem = 64;

}  // namespace

void expand_patches(const uint8_t* compact, int64_t rows, int64_t channels, int64_t area, int64_t temporal,
                    const uint8_t* table, int item_size, uint8_t* out, int num_threads) {
    const LayoutKernels& kernels = layout_kernels(simd_level());
    const LookupTable lookup = lookup_table(table, channels, item_size, kernels, nullptr);
    const int64_t slot_bytes = area * item_size;
    const int64_t row_bytes = channels * temporal * slot_bytes;
    const bool streaming = use_streaming_stores(out, static_cast<size_t>(rows * row_bytes));
    const int64_t threads =
        std::max<int64_t>(1, std::min({int64_t{num_threads}, rows / kMinRowsPerThread, pool_threads()}));
    // Row buffers allocated here, so that the threads never throw.
    std::vector<std::vector<uint8_t>> buffers(static_cast<size_t>(threads),
                                              std::vector<uint8_t>(static_cast<size_t>(row_bytes)));
    const int64_t items = (rows + kRowsPerItem - 1) / kRowsPerItem;
    parallel_items(items, threads, [&](int64_t slot, const std::function<int64_t()>& next) {
        OutputWriter writer(streaming);
        uint8_t* row = buffers[slot].data();
        for (int64_t item; (item = next()) >= 0;) {
            for (int64_t r = item * kRowsPerItem; r < std::min(rows, (item + 1) * kRowsPerItem); ++r) {
                const uint8_t* values = compact + r * channels * area;
                for (int64_t c = 0; c < channels; ++c) {
                    uint8_t* first = row + c * temporal * slot_bytes;
                    kernels.lookup(values + c * area, area, lookup, c, first);
                    for (int64_t t = 1; t < temporal; ++t)
                        std::memcpy(first + t * slot_bytes, first, static_cast<size_t>(slot_bytes));
                }
                writer.write(out + r * row_bytes, row, static_cast<size_t>(row_bytes));
            }
        }
        writer.finish();
    });
}

}  // namespace vlfast
