// What the benchmarks share: wall time, medians, and peak memory measured in a fresh process
// (a benchmark binary re-runs itself with one section named; that child prints the growth of
// its resident memory, in KiB, over a second call of the section).
#pragma once
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/memory.h"

namespace bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double seconds(const std::function<void()>& f) {
  const double t0 = now();
  f();
  return now() - t0;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Child side: calls f once (one-time allocations settle), returns the heap to the kernel, then
/// prints the peak resident growth of a second call in KiB. Returns the process exit status.
inline int print_peak_growth(const std::function<void()>& f) {
  f();
  malloc_trim(0);  // what the section needs then shows as growth
  const int64_t before = edgewise::resident_kib();
  if (!edgewise::reset_peak_resident()) return 1;
  f();
  std::printf("%lld\n", static_cast<long long>(edgewise::peak_resident_kib() - before));
  return 0;
}

/// Parent side: runs `command` (this binary with a section named) and reads the KiB it
/// printed; -1 when it failed.
inline long long child_peak_kib(const std::string& command) {
  long long kib = -1;
  if (FILE* p = popen(command.c_str(), "r")) {
    if (std::fscanf(p, "%lld", &kib) != 1) kib = -1;
    pclose(p);
  }
  return kib;
}

}  // namespace bench
