// Attributes that compile one function for an x86 instruction-set level, picked at run time
// (kernels.h simd_level()); everything else is built for baseline x86-64, so wheels run on any
// x86-64 CPU. Elsewhere (other architectures, other compilers) VLFAST_X86 is 0 and none of
// these levels is built. Also the one helper the AVX-512 code of several files shares (first_bits).
#pragma once

#if defined(__GNUC__) && defined(__x86_64__)
#define VLFAST_X86 1
#include <immintrin.h>
#define VLFAST_SSSE3 __attribute__((target("ssse3")))
#define VLFAST_AVX2 __attribute__((target("avx2")))
#define VLFAST_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))
// The AVX2 level's formula kernels (layout.cpp), which also convert to float16 (F16C): run only where the
// CPU has it (every AVX2 CPU does, but a virtual machine may hide it: then every item is looked up).
#define VLFAST_AVX2_F16C __attribute__((target("avx2,f16c")))
#define VLFAST_AVX2_F16C_INLINE inline __attribute__((target("avx2,f16c"), always_inline))
// For a lambda's body, which does not take its enclosing function's level.
#define VLFAST_AVX2_LAMBDA __attribute__((target("avx2")))
// The AVX-512 level (SimdLevel::kAvx512) requires all of these.
#define VLFAST_AVX512_TARGET "avx2,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni"
#define VLFAST_AVX512 __attribute__((target(VLFAST_AVX512_TARGET)))
#define VLFAST_AVX512_INLINE inline __attribute__((target(VLFAST_AVX512_TARGET), always_inline))
#define VLFAST_AVX512_LAMBDA __attribute__((target(VLFAST_AVX512_TARGET)))
// Inlined into every caller, so compiled for each caller's level.
#define VLFAST_INLINE_IN_CALLER inline __attribute__((always_inline))
#include <cstdint>
namespace vlfast {
// The mask of the first n (0 to 64 and more) of 64 bytes, for the AVX-512 masked loads and stores.
inline __mmask64 first_bits(int64_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }
}  // namespace vlfast
#else
#define VLFAST_X86 0
#define VLFAST_INLINE_IN_CALLER inline
#endif
