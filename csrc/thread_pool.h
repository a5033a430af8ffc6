// Persistent worker threads for the frames' block rows: a call no longer pays for
// starting and joining threads (tens of microseconds each, much of a small frame's time).
#pragma once

#include <cstdint>
#include <functional>

namespace vlfast {

// Runs items 0 .. count - 1 (count < 2^32), each once, on the calling thread and up to slots - 1
// workers of a process-wide pool, and returns when all have finished. The caller runs
// work(0, next), and each worker that joins (one per other core at most) work(slot, next) with a
// slot of its own (0 < slot < slots: per-thread buffers); work takes items by calling next()
// until it returns -1. Slot i starts with the i-th of slots equal runs of items, in order (item
// 0 always the caller's); a thread whose run is done takes the back half of the fullest run
// left, so runs stay contiguous and a thread that is slow or late to start holds the others up
// by at most the item in hand. The runs of slots no worker joins (other calls, no threads to be
// had, a forked child) are taken the same way, so all items run even with no worker at all.
// `work` must not throw on a worker; std::length_error for a count out of range.
// The most threads parallel_items runs at once: the caller and one pool worker per other core
// (at least one). More slots only cost their per-thread buffers.
int64_t pool_threads();

void parallel_items(int64_t count, int64_t slots,
                    const std::function<void(int64_t, const std::function<int64_t()>&)>& work);

}  // namespace vlfast
