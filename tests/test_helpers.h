// Helpers shared by the C++ tests: where golden files live, and a skip when a fixture is absent.
#pragma once
#include <filesystem>
#include <string>

namespace ewtest {

/// ${build}/golden/<fixture>/<file>
inline std::string golden(const std::string& fixture, const std::string& file) {
  return std::string(EW_GOLDEN_DIR) + "/" + fixture + "/" + file;
}

inline bool exists(const std::string& p) { return std::filesystem::exists(p); }

}  // namespace ewtest
