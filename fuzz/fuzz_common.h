// What the harnesses share: an in-memory file (memfd) the parsers open by path, and the rule
// that an edgewise::Error is the expected rejection of a bad file. Anything else that escapes a
// parser (another exception, a sanitizer report, an abort, a timeout, an allocation beyond
// libFuzzer's -malloc_limit_mb) is a crash: a bug to fix in the parser.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "edgewise/error.h"

namespace ew_fuzz {

/// A file in memory (memfd_create) reachable as "/proc/self/fd/N", so parsers that take a path
/// (mmap or ifstream) read the fuzz input without touching the disk. One per process and name.
class MemFile {
 public:
  explicit MemFile(const char* name) {
    fd_ = memfd_create(name, MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  /// Replaces the content with `data` and returns the path to open.
  const std::string& write(const void* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    const char* p = static_cast<const char*>(data);
    size_t off = 0;
    while (off < size) {
      const ssize_t n = pwrite(fd_, p + off, size - off, static_cast<off_t>(off));
      if (n <= 0) std::abort();
      off += static_cast<size_t>(n);
    }
    return path_;
  }
  const std::string& write(std::string_view s) { return write(s.data(), s.size()); }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

/// Runs f; an edgewise::Error is a rejection (returns false), anything else propagates.
/// With EW_FUZZ_VERBOSE=1 in the environment each rejection's message is printed (to see
/// what a seed or a crash input is refused for).
template <class F>
bool accepts(F&& f) {
  static const bool verbose = std::getenv("EW_FUZZ_VERBOSE") != nullptr;
  try {
    f();
    if (verbose) std::fprintf(stderr, "[accepted]\n");
    return true;
  } catch (const edgewise::Error& e) {
    if (verbose) std::fprintf(stderr, "[rejected] %s\n", e.what());
    return false;
  }
}

/// Keeps a value alive so reads of tensor bytes are not optimised away.
inline void sink(uint64_t v) {
  static volatile uint64_t s;
  s = s + v;
}

}  // namespace ew_fuzz
