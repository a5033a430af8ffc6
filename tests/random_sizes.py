"""Random image sides for the smart_resize comparisons: where the rounding rules differ."""

import math
import random


def random_side(rng: random.Random) -> int:
    """Log-uniform from 1 to 20000 pixels (many below the factor), plus multiples of 14 where ties live."""
    if rng.random() < 0.2:
        return max(1, 14 * rng.randint(1, 600))
    return max(1, int(math.exp(rng.uniform(0, math.log(20000)))))
