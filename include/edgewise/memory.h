// Process memory: the allocator settings edgewise runs with, and resident-memory readings.
#pragma once
#include <cstdint>

namespace edgewise {

/// Makes glibc's malloc keep freed memory instead of returning it to the kernel after every
/// large tensor: the patched forward allocates and frees tensors of tens to hundreds of MiB per
/// layer, and with glibc's defaults each one is a fresh mmap whose pages fault in (and are zeroed
/// by the kernel) on first touch, which cost more system time than the arithmetic (measured in
/// docs/BENCHMARKS.md). Allocations up to 1 GiB come from the heap; up to 1 GiB of free heap is
/// kept. Call once at the start of a program; a no-op where the C library is not glibc.
void tune_allocator();

/// libgomp (the threads of libtorch and MKL) reads OMP_WAIT_POLICY when it loads, before main:
/// by default idle threads spin, and on a machine with other busy processes a spinning thread
/// takes the core the working one needs (ACDC's many small passes ran 12x slower on 2 shared
/// cores: docs/BENCHMARKS.md). Unless the user set OMP_WAIT_POLICY, this sets it to passive and
/// re-executes the program (argv unchanged) once; returns only when no re-execution happened.
void prefer_passive_threads(char** argv);

/// Resident memory now and its peak since the last reset, in KiB (Linux /proc/self/status);
/// -1 where unavailable.
int64_t resident_kib();
int64_t peak_resident_kib();
/// Resets the peak to the current resident memory (Linux >= 4.0); false where unsupported.
bool reset_peak_resident();

}  // namespace edgewise
