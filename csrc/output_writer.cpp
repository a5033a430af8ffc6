// OutputWriter: whole output lines with streaming stores, partial ones with ordinary stores.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define VLFAST_STREAMING_STORES 1
#else
#define VLFAST_STREAMING_STORES 0
#endif

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define VLFAST_MINCORE 1
#else
#define VLFAST_MINCORE 0
#endif

namespace vlfast {
namespace {

constexpr size_t kLine = kCacheLine;

// One 64-byte output line (dst line-aligned) from src.
inline void store_line(uint8_t* dst, const uint8_t* src) {
#if VLFAST_STREAMING_STORES
    for (size_t i = 0; i < kLine; i += 16)
        _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
#else
    std::memcpy(dst, src, kLine);
#endif
}

}  // namespace

bool use_streaming_stores(const uint8_t* begin, size_t bytes) {
    if (!VLFAST_STREAMING_STORES || bytes == 0) return false;
#if VLFAST_MINCORE
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t first = reinterpret_cast<uintptr_t>(begin) / page * page;
    const size_t length = reinterpret_cast<uintptr_t>(begin) + bytes - first;
    std::vector<unsigned char> resident((length + page - 1) / page);
    if (mincore(reinterpret_cast<void*>(first), length, resident.data()) != 0) return true;
    size_t in_memory = 0;
    for (unsigned char flags : resident) in_memory += flags & 1;
    return 2 * in_memory >= resident.size();
#else
    return true;  // no cheap way to tell: assume memory in use
#endif
}

void OutputWriter::write(uint8_t* dst, const uint8_t* src, size_t bytes) {
    if (!streaming_) {
        std::memcpy(dst, src, bytes);
        return;
    }
    while (bytes > 0) {
        uint8_t* line = dst - reinterpret_cast<uintptr_t>(dst) % kLine;
        const size_t offset = static_cast<size_t>(dst - line);
        if (line_dst_ != nullptr && (line != line_dst_ || offset != end_)) write_pending();  // not contiguous
        if (line_dst_ == nullptr) {
            if (offset == 0 && bytes >= kLine) {
                const size_t whole = bytes - bytes % kLine;
                for (size_t i = 0; i < whole; i += kLine) store_line(dst + i, src + i);
                dst += whole;
                src += whole;
                bytes -= whole;
                continue;
            }
            line_dst_ = line;
            begin_ = end_ = offset;
        }
        const size_t take = std::min(bytes, kLine - end_);
        std::memcpy(line_ + end_, src, take);
        end_ += take;
        dst += take;
        src += take;
        bytes -= take;
        if (end_ == kLine) {
            if (begin_ == 0) {
                store_line(line_dst_, line_);
                line_dst_ = nullptr;
            } else {
                write_pending();
            }
        }
    }
}

void OutputWriter::write_pending() {
    std::memcpy(line_dst_ + begin_, line_ + begin_, end_ - begin_);
    line_dst_ = nullptr;
}

void OutputWriter::finish() {
    if (line_dst_ != nullptr) write_pending();
#if VLFAST_STREAMING_STORES
    _mm_sfence();
#endif
}

}  // namespace vlfast
