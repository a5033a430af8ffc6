// Persistent worker threads for the frames' shares of work: a call no longer pays for
// starting and joining threads (tens of microseconds each, much of a small frame's time).
#pragma once

#include <cstdint>
#include <functional>

namespace vlfast {

// Runs work(0) .. work(count - 1), each once, on the calling thread and up to count - 1
// workers of a process-wide pool, and returns when all have finished. The caller takes
// shares too, so every share runs even when no worker is free (other calls, no threads to
// be had, a forked child). `work` must not throw.
void parallel_for(int64_t count, const std::function<void(int64_t)>& work);

}  // namespace vlfast
