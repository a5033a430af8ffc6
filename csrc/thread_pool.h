// Persistent worker threads for the frames' block rows: a call no longer pays for
// starting and joining threads (tens of microseconds each, much of a small frame's time).
#pragma once

#include <cstdint>
#include <functional>

namespace vlfast {

// Runs items 0 .. count - 1 (count < 2^32), each once, on the calling thread and up to slots - 1
// workers of a process-wide pool, and returns when all have finished. Each thread runs
// work(slot, next) once, slot 0 .. slots - 1 naming it (the caller's 0: per-thread buffers),
// and takes items by calling next() until it returns -1. Slot i starts with the i-th of slots
// equal runs of items, in order; once it is done, it takes the back half of the fullest run
// left, so the runs stay contiguous and no thread idles while another, slower or late to
// start, has items waiting. The caller takes items too, so all of them run even when no worker
// is free (other calls, no threads to be had, a forked child). `work` must not throw.
void parallel_items(int64_t count, int64_t slots,
                    const std::function<void(int64_t, const std::function<int64_t()>&)>& work);

}  // namespace vlfast
