// GGUF reader (versions 2 and 3): header, typed metadata, tensor infos, aligned tensor data,
// and dequantisation of the ggml block formats to float32. Every count, string length, offset
// and tensor byte range is checked against the file size before use. Layout follows the GGUF
// specification in ggml (docs/gguf.md); block formats follow ggml-quants.
// Not here: writing GGUF, quantising.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "edgewise/mapped_file.h"

namespace edgewise {

/// ggml tensor types (values are the on-disk ids).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};

/// Name ("Q4_K") of a type id, or "type<N>" for unknown ids.
std::string ggml_type_name(uint32_t type);
/// True when dequantize() supports the type.
bool ggml_type_supported(uint32_t type);
/// Elements per block and bytes per block (1 and the element size for plain types).
int64_t ggml_block_elems(GgmlType t);
int64_t ggml_block_bytes(GgmlType t);
/// Bytes needed for n elements (n must be a multiple of the block size; Error otherwise).
uint64_t ggml_nbytes(GgmlType t, int64_t n, const std::string& where);

/// Dequantises n elements of type t from src into dst (float32). n must be a multiple of the
/// block size. Pure function, no allocation; matches gguf-py's gguf.quants.dequantize.
void ggml_dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n);

/// One metadata value. Arrays hold one of the scalar vectors.
struct GgufValue {
  using Array = std::variant<std::vector<int64_t>, std::vector<uint64_t>, std::vector<double>,
                             std::vector<bool>, std::vector<std::string>>;
  std::variant<int64_t, uint64_t, double, bool, std::string, Array> v;
  uint32_t type = 0;  ///< GGUF value type id as stored (for info printing)
  uint32_t array_type = 0;  ///< element type id when type is ARRAY (9), else 0
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  ///< ggml order: ne[0] is the fastest-varying (row length)
  uint32_t type;
  uint64_t offset;          ///< relative to the data section
  const uint8_t* data;      ///< bounds-checked pointer into the mapped file
  uint64_t nbytes;
};

class GgufFile {
 public:
  /// Opens and validates `path`. Unknown tensor types are accepted at open time (reported by
  /// name when a tensor of that type is dequantised).
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Typed metadata access; each fails naming the file and key when missing or of another type.
  bool has(const std::string& key) const { return metadata_.count(key) > 0; }
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;   ///< any integer type
  double get_float(const std::string& key) const;  ///< float or integer types
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  /// Dequantises a tensor to float32 (row-major, ggml order: ne[0] fastest). Errors name the
  /// file, tensor and type.
  std::vector<float> dequantize(const GgufTensorInfo& t) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace edgewise
