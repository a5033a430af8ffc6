// OutputWriter: whole output lines with streaming stores, partial ones with ordinary stores.
#include <algorithm>
#include <cstring>

#include "kernels.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define VLFAST_STREAMING_STORES 1
#else
#define VLFAST_STREAMING_STORES 0
#endif

namespace vlfast {
namespace {

constexpr size_t kLine = 64;

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

void OutputWriter::write(uint8_t* dst, const uint8_t* src, size_t bytes) {
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
