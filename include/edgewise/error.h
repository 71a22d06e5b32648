// Errors: every failure the user can cause (a bad file, a bad option, a bad dataset line) is an
// edgewise::Error whose message says where (file, tensor, line) and what was expected.
// The command line prints it as one line and exits non-zero. Internal bugs stay assertions.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace edgewise {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws Error("<where>: <what>"). `where` is usually a file path, optionally with a tensor or line.
[[noreturn]] void fail(const std::string& where, const std::string& what);

/// The whole of `text` as a decimal integer in [lo, hi]; nullopt when it is not one (empty, a sign
/// or digits followed by anything else, out of range). Callers say what they expected.
std::optional<int64_t> parse_integer(const std::string& text, int64_t lo, int64_t hi);

/// Formats a byte count for messages ("1.5 MiB").
std::string format_bytes(double n);

}  // namespace edgewise
