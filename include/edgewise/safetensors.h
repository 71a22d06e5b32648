// safetensors reader: the 8-byte little-endian header length, the JSON header, raw tensor data.
// Every tensor's dtype, shape and byte range are checked against the header and the file size
// at open time; data is read in place from the mmap. safetensors_write writes one atomically.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edgewise/mapped_file.h"

namespace edgewise {

/// Element types of a safetensors file we understand.
enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// Size in bytes of one element; name as written in the header ("F32").
size_t st_dtype_size(StDType t);
const char* st_dtype_name(StDType t);

struct StTensor {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  ///< points into the mapped file, already bounds-checked
  uint64_t nbytes;
};

class SafetensorsFile {
 public:
  /// Opens and validates `path` (header length, JSON, dtypes, shapes vs byte ranges, bounds).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The tensor or nullptr.
  const StTensor* find(const std::string& name) const;
  /// MappedFile::drop_pages on this file's mapping.
  void drop_pages(const void* p, size_t n) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// One tensor to write: raw little-endian data of prod(shape) elements of `dtype`.
struct StWriteTensor {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  const void* data;
  uint64_t nbytes;
};

/// Writes a safetensors file (packed data, tensors ordered by dtype width so each starts aligned,
/// `metadata` as the header's "__metadata__") through a temporary file and a rename. Fails naming the path
/// and tensor when a byte count does not match its shape and dtype or names repeat.
void safetensors_write(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace edgewise
