// The pool of thread_pool.h: a queue of batches. Each thread of a batch works through a range of
// its items of its own, front to back, then steals the back half of the fullest range left.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define VLFAST_ATFORK 1
#else
#define VLFAST_ATFORK 0
#endif

namespace vlfast {
namespace {

// How long the caller polls for its workers to finish before it sleeps. A sleeping thread took
// 15-110 us to resume in the 2-vCPU VMs measured, much of a 448x448 frame (0.3 ms), and the
// workers' last items end soon after the caller's. Idle workers do not poll: a worker polling
// after each frame slowed 448x448 frames 1-5 ms apart by 5-7%, and another pool's threads.
constexpr std::chrono::microseconds kSpin{200};

// Polls done() (with CPU pause hints) until it is true or kSpin has passed; returns done().
template <typename Done>
bool spin_until(Done done) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= until) return done();
        for (int i = 0; i < 16; ++i) {
#if defined(__x86_64__) || defined(_M_X64)
            _mm_pause();
#endif
        }
    }
}

// One slot's items [begin, end) in one word (begin in the low half), so that the owner's claim
// from the front and a thief's from the back are each one compare-exchange. A line each, so
// that the owners' claims do not contend.
struct alignas(64) Range {
    std::atomic<uint64_t> word{0};
};

constexpr uint64_t pack(uint64_t begin, uint64_t end) { return begin | end << 32; }
constexpr int64_t begin_of(uint64_t word) { return static_cast<int64_t>(word & 0xffffffffu); }
constexpr int64_t end_of(uint64_t word) { return static_cast<int64_t>(word >> 32); }

// A slot number no joining thread gets once the caller has closed the batch.
constexpr int64_t kClosed = int64_t{1} << 40;

struct Batch {
    Batch(const std::function<void(int64_t, const std::function<int64_t()>&)>& work, int64_t count, int64_t slots)
        : work(&work), slots(slots), ranges(new Range[static_cast<size_t>(slots)]) {
        for (int64_t i = 0; i < slots; ++i)
            ranges[i].word.store(pack(static_cast<uint64_t>(count * i / slots),
                                      static_cast<uint64_t>(count * (i + 1) / slots)),
                                 std::memory_order_relaxed);
    }

    // The caller's; only touched by threads that joined before the caller closed the batch.
    const std::function<void(int64_t, const std::function<int64_t()>&)>* work;
    int64_t slots;
    std::unique_ptr<Range[]> ranges;
    std::atomic<int64_t> next_slot{1};  // the next joining worker's slot (slot 0 is the caller's)
    std::atomic<int64_t> left{0};       // workers that joined and have finished
    std::mutex mutex;
    std::condition_variable finished;
};

// The first item of `range`, taken from it; -1 when it is empty.
int64_t claim_front(Range& range) {
    uint64_t word = range.word.load(std::memory_order_relaxed);
    for (;;) {
        const int64_t begin = begin_of(word), end = end_of(word);
        if (begin >= end) return -1;
        if (range.word.compare_exchange_weak(word, pack(begin + 1, end), std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
            return begin;
    }
}

// Moves the back half (rounded up) of the fullest other slot's range to `slot`'s own, empty
// range; false when every range is empty (every item claimed).
bool steal(Batch& batch, int64_t slot) {
    for (;;) {
        int64_t victim = -1, most = 0;
        uint64_t seen = 0;
        for (int64_t i = 0; i < batch.slots; ++i) {
            const uint64_t word = batch.ranges[i].word.load(std::memory_order_relaxed);
            if (i != slot && end_of(word) - begin_of(word) > most) {
                victim = i;
                most = end_of(word) - begin_of(word);
                seen = word;
            }
        }
        if (victim < 0) return false;
        const int64_t end = end_of(seen), split = end - (most + 1) / 2;
        if (batch.ranges[victim].word.compare_exchange_strong(seen, pack(begin_of(seen), split),
                                                              std::memory_order_acq_rel, std::memory_order_relaxed)) {
            batch.ranges[slot].word.store(pack(split, end), std::memory_order_release);
            return true;
        }
    }
}

// The next item of `slot`: the front of its own range, else of what it steals; -1 when none is left.
int64_t claim(Batch& batch, int64_t slot) {
    for (;;) {
        const int64_t item = claim_front(batch.ranges[slot]);
        if (item >= 0 || !steal(batch, slot)) return item;
    }
}

// Runs the batch's work on a worker's `slot`.
void run_slot(Batch& batch, int64_t slot) {
    const std::function<int64_t()> next = [&batch, slot] { return claim(batch, slot); };  // stored inline
    (*batch.work)(slot, next);
}

// Closes `batch` when the caller leaves parallel_items, by an exception too: the workers that joined
// it before are waited for (they may be running the caller's work), later ones leave it untouched.
class Closer {
public:
    explicit Closer(Batch& batch) : batch_(batch) {}
    Closer(const Closer&) = delete;
    Closer& operator=(const Closer&) = delete;
    ~Closer() {
        const int64_t joined =
            std::min(batch_.next_slot.exchange(kClosed, std::memory_order_acq_rel), batch_.slots) - 1;
        auto all_left = [&] { return batch_.left.load(std::memory_order_acquire) == joined; };
        if (spin_until(all_left)) return;
        std::unique_lock<std::mutex> lock(batch_.mutex);
        batch_.finished.wait(lock, all_left);
    }

private:
    Batch& batch_;
};

// Workers wait for batches; a batch is queued once per worker it asks for. Never destroyed
// (workers may be waiting when the process exits).
class Pool {
public:
    void submit(const std::shared_ptr<Batch>& batch, int64_t helpers) {
        std::lock_guard<std::mutex> lock(mutex_);
        const int64_t wanted = std::min(helpers, pool_threads() - 1);
        while (workers_ < wanted) {
            try {
                std::thread([this] { serve(); }).detach();
            } catch (const std::exception&) {  // system_error, bad_alloc
                break;  // no more threads to be had: the runs of the slots nobody joins are stolen
            }
            ++workers_;
        }
        for (int64_t i = 0; i < std::min(helpers, workers_); ++i) queue_.push_back(batch);
        wake_.notify_all();
    }

private:
    void serve() {
        for (;;) {
            std::shared_ptr<Batch> batch;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [this] { return !queue_.empty(); });
                batch = std::move(queue_.front());
                queue_.pop_front();
            }
            // A batch is queued at most slots - 1 times; a worker that finds it full or closed leaves it.
            // One worker may join a batch twice in turn (it finds nothing left the second time).
            const int64_t slot = batch->next_slot.fetch_add(1, std::memory_order_acq_rel);
            if (slot >= batch->slots) continue;
            run_slot(*batch, slot);
            batch->left.fetch_add(1, std::memory_order_acq_rel);
            std::lock_guard<std::mutex> lock(batch->mutex);
            batch->finished.notify_all();
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

int64_t pool_threads() {
    // One worker per other core.
    return std::max<int64_t>(2, static_cast<int64_t>(std::thread::hardware_concurrency()));
}

void parallel_items(int64_t count, int64_t slots,
                    const std::function<void(int64_t, const std::function<int64_t()>&)>& work) {
    if (count < 0 || count >= (int64_t{1} << 32)) throw std::length_error("parallel_items: count must be in [0, 2^32)");
    slots = std::max<int64_t>(1, std::min(slots, count));
    auto batch = std::make_shared<Batch>(work, count, slots);
    // Item 0 is the caller's, taken out of its range before any worker can see it.
    int64_t first = -1;
    if (count > 0) first = claim_front(batch->ranges[0]);
    const std::function<int64_t()> next = [&batch, &first] {  // stored inline
        return first >= 0 ? std::exchange(first, int64_t{-1}) : claim(*batch, 0);
    };
    if (slots == 1) return work(0, next);
    const Closer closer(*batch);
    pool().submit(batch, slots - 1);
    work(0, next);
}

}  // namespace vlfast
