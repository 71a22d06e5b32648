// Helpers for the C++ tests that use libtorch: golden tensors written by the Python
// `safetensors` package, copied out of the mapping.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "edgewise/error.h"
#include "edgewise/safetensors.h"

namespace ewtest {

/// Every tensor of a golden safetensors file (int64, float64 or float32).
inline std::map<std::string, at::Tensor> read_golden_tensors(const std::string& path) {
  auto f = edgewise::SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> r;
  for (const auto& [n, t] : f.tensors()) {
    at::ScalarType st;
    switch (t.dtype) {
      case edgewise::StDType::I64: st = at::kLong; break;
      case edgewise::StDType::F64: st = at::kDouble; break;
      case edgewise::StDType::F32: st = at::kFloat; break;
      default: edgewise::fail(path, "golden tensor " + n + " is not int64, float64 or float32");
    }
    r[n] = at::from_blob(const_cast<uint8_t*>(t.data), t.shape, at::TensorOptions().dtype(st)).clone();
  }
  return r;
}

}  // namespace ewtest
