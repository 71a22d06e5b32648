// A read-only memory-mapped file. Readers (safetensors, GGUF) check every offset and length
// against size() before touching data(); use `span(off, len, what)` which does that check.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace edgewise {

class MappedFile {
 public:
  /// Maps `path` read-only. Fails with Error naming the path when it cannot be opened.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  /// Pointer to [off, off+len) after checking it lies inside the file; `what` names the region
  /// in the error ("tensor 'x' data", "header").
  const uint8_t* span(uint64_t off, uint64_t len, const std::string& what) const;
  /// Drops the resident pages wholly inside [p, p + n) when that lies in this mapping (nothing
  /// otherwise): they are read again from the file if touched later. For data copied out and no
  /// longer read here (packed weights), so that it stops counting in resident memory.
  void drop_pages(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace edgewise
