"""Builds the C++ CPU kernel ``vlfast._C``; the rest of the metadata lives in pyproject.toml."""

import sys
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

# No -march=native: wheels must run on any x86-64. The AVX2 and AVX-512 kernels carry their own
# target attributes (csrc/x86_target.h) and are picked at run time (csrc/kernels_x86.cpp).
extension = Pybind11Extension(
    "vlfast._C",
    sorted(glob("csrc/*.cpp")),
    depends=sorted(glob("csrc/*.h")),
    include_dirs=["csrc"],
    cxx_std=17,
    # No multiply and add contracted into one FMA where the flags allow FMA (-march=...): the formula kernels
    # (csrc/layout.cpp) round where the arithmetic they reproduce rounds.
    extra_compile_args=[] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"],
)

# Compile the sources in parallel (NPY_NUM_BUILD_JOBS overrides the default of one job per core).
ParallelCompile("NPY_NUM_BUILD_JOBS").install()

setup(ext_modules=[extension], cmdclass={"build_ext": build_ext})
