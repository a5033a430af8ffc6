// The compact hand-off's expansion on the CPU: uint8 patches (values after the resize, each
// still image once) -> pixel_values items, the temporal copies restored. Trusts its inputs:
// bindings.cpp validates.
#pragma once

#include <cstdint>

namespace vlfast {

// `compact` holds `rows` rows of channels x area bytes (area = patch_size^2), `out` rows of
// channels x temporal x area items of item_size bytes: item (c * temporal + t) * area + j of a
// row is table item (c, compact byte c * area + j) for every t. `table` holds channels x
// kTableSize items, copied bit for bit. Splits the rows over up to num_threads threads.
void expand_patches(const uint8_t* compact, int64_t rows, int64_t channels, int64_t area, int64_t temporal,
                    const uint8_t* table, int item_size, uint8_t* out, int num_threads);

}  // namespace vlfast
