// The SIMD levels the CPU kernels come in, and the one they run at (kernels_x86.cpp detects it).
#pragma once

namespace vlfast {

// The instruction sets the kernels may use, in increasing order: each level's kernels give the
// portable kernels' bytes. kAvx512 means AVX-512 F, BW, VL, VBMI and VNNI (Ice Lake, Sapphire Rapids, Zen 4).
enum class SimdLevel : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

// The highest level this CPU has.
SimdLevel cpu_simd_level();
// The level the kernels run at now: cpu_simd_level() unless capped.
SimdLevel simd_level();
// Caps the level at `cap` (tests and benchmarks cover every level the CPU has); returns simd_level().
SimdLevel set_simd_level(SimdLevel cap);

}  // namespace vlfast
