// The pool of thread_pool.h: a queue of batches, each batch's shares claimed with an atomic
// counter by whichever thread (caller or worker) gets there first.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define VLFAST_ATFORK 1
#else
#define VLFAST_ATFORK 0
#endif

namespace vlfast {
namespace {

struct Batch {
    const std::function<void(int64_t)>* work;  // the caller's; only touched for claimed shares
    int64_t count;
    std::atomic<int64_t> next{1};  // the next unclaimed share (share 0 is the caller's)
    std::atomic<int64_t> done{0};
    std::mutex mutex;
    std::condition_variable finished;
};

// Runs `share` of `batch` and counts it done.
void run_share(Batch& batch, int64_t share) {
    (*batch.work)(share);
    if (batch.done.fetch_add(1, std::memory_order_acq_rel) + 1 == batch.count) {
        std::lock_guard<std::mutex> lock(batch.mutex);
        batch.finished.notify_all();
    }
}

// Claims and runs shares of `batch` until none is left.
void run_shares(Batch& batch) {
    for (;;) {
        const int64_t share = batch.next.fetch_add(1, std::memory_order_relaxed);
        if (share >= batch.count) return;
        run_share(batch, share);
    }
}

// Workers wait for batches; a batch is queued once per worker it asks for. Never destroyed
// (workers may be waiting when the process exits).
class Pool {
public:
    void submit(const std::shared_ptr<Batch>& batch, int64_t helpers) {
        std::lock_guard<std::mutex> lock(mutex_);
        const int64_t wanted = std::min(helpers, max_workers());
        while (workers_ < wanted) {
            try {
                std::thread([this] { serve(); }).detach();
            } catch (const std::system_error&) {
                break;  // no more threads to be had: the callers take the shares
            }
            ++workers_;
        }
        for (int64_t i = 0; i < std::min(helpers, workers_); ++i) queue_.push_back(batch);
        wake_.notify_all();
    }

private:
    static int64_t max_workers() {
        // One worker per other core; more shares than workers are claimed in turn.
        return std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) - 1);
    }

    void serve() {
        for (;;) {
            std::shared_ptr<Batch> batch;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [this] { return !queue_.empty(); });
                batch = std::move(queue_.front());
                queue_.pop_front();
            }
            run_shares(*batch);
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::shared_ptr<Batch>> queue_;
    int64_t workers_ = 0;
};

std::atomic<Pool*> current_pool{nullptr};

#if VLFAST_ATFORK
// A forked child has none of the parent's workers, and the parent's locks may be held: it
// starts a pool of its own (the old one is left as it is).
void new_pool_in_child() { current_pool.store(new Pool, std::memory_order_release); }
#endif

Pool& pool() {
    static const bool created = [] {
        current_pool.store(new Pool, std::memory_order_release);
#if VLFAST_ATFORK
        pthread_atfork(nullptr, nullptr, new_pool_in_child);
#endif
        return true;
    }();
    (void)created;
    return *current_pool.load(std::memory_order_acquire);
}

}  // namespace

void parallel_for(int64_t count, const std::function<void(int64_t)>& work) {
    if (count <= 1) {
        if (count == 1) work(0);
        return;
    }
    auto batch = std::make_shared<Batch>();
    batch->work = &work;
    batch->count = count;
    pool().submit(batch, count - 1);
    // Share 0 is always the caller's, as with threads started per call: a worker woken on this
    // core (all others busy) then runs one share while the caller waits, not all of them.
    run_share(*batch, 0);
    run_shares(*batch);
    std::unique_lock<std::mutex> lock(batch->mutex);
    batch->finished.wait(lock, [&] { return batch->done.load(std::memory_order_acquire) == count; });
}

}  // namespace vlfast
