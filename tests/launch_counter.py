"""Counting kernel launches in tests: wrap a ``@triton.jit`` kernel and read ``launches``."""


class LaunchCounter:
    """Stands in for a ``@triton.jit`` kernel and counts its launches."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.launches = 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]
