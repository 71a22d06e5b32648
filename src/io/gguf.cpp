// GGUF reader: parses the header, the typed metadata and the tensor infos of a GGUF v2 / v3
// file (little-endian), checks every count, length, offset and tensor byte range against the
// file size before use, and hands out bounds-checked pointers into the mmap. Layout, from
// ggml's docs/gguf.md:
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv:     string key | u32 value_type | value        (string = u64 length + bytes, no NUL)
//   array:  u32 element_type | u64 count | elements
//   tensor: string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset
//   padding to general.alignment (default 32) | tensor data (each offset aligned, relative)
// Not here: writing GGUF, v1 files (32-bit counts), big-endian files, arrays of arrays; block
// formats and dequantisation are in dequant.cpp.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>
#include <unordered_set>

#include "edgewise/error.h"
#include "edgewise/gguf.h"

namespace edgewise {
namespace {

// GGUF metadata value types (gguf_type in ggml's gguf.h).
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
constexpr uint32_t kNumValueTypes = 13;
constexpr int kMaxDims = 4;  // GGML_MAX_DIMS
// Largest metadata array accepted. Real ones are tokenizer tables of at most ~10^6 entries; a
// corrupt count that still fits in a large file would otherwise allocate up to 8x the file
// size (u8 elements are held as int64).
constexpr uint64_t kMaxArrayElems = uint64_t{1} << 26;
// Reservations driven by counts from the file are capped; vectors grow past this as real
// entries are parsed.
constexpr uint64_t kMaxReserve = uint64_t{1} << 16;

const char* value_type_name(uint32_t t) {
  static const char* names[kNumValueTypes] = {"UINT8",  "INT8",   "UINT16", "INT16", "UINT32",
                                              "INT32",  "FLOAT32", "BOOL",  "STRING", "ARRAY",
                                              "UINT64", "INT64",  "FLOAT64"};
  return t < kNumValueTypes ? names[t] : "unknown";
}

// Bytes of one scalar value; 0 for STRING and ARRAY.
uint64_t scalar_size(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

std::string describe_type(const GgufValue& v) {
  if (v.type == kArray) return std::string("ARRAY of ") + value_type_name(v.array_type);
  return value_type_name(v.type);
}

// A cursor over the mapped file; every read goes through MappedFile::span.
class Reader {
 public:
  explicit Reader(const MappedFile& f) : f_(f) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return pos_ <= f_.size() ? f_.size() - pos_ : 0; }
  const std::string& path() const { return f_.path(); }

  const uint8_t* take(uint64_t n, const std::string& what) {
    const uint8_t* p = f_.span(pos_, n, what);
    pos_ += n;
    return p;
  }
  uint32_t u32(const std::string& what) {
    uint32_t v;
    std::memcpy(&v, take(4, what), 4);
    return v;
  }
  uint64_t u64(const std::string& what) {
    uint64_t v;
    std::memcpy(&v, take(8, what), 8);
    return v;
  }
  // A GGUF string: u64 length, then that many bytes. The length is checked against the file
  // before anything is allocated.
  std::string str(const std::string& what) {
    const uint64_t len = u64(what);
    const uint8_t* p = take(len, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Any nonzero byte is true, as in ggml's gguf reader and gguf-py (numpy bool_ view).
bool read_bool(const uint8_t* p) { return *p != 0; }

// `count` values stored as Src, read in one bounds-checked span and widened to T.
template <class T, class Src>
std::vector<T> read_scalars(Reader& r, uint64_t count, const std::string& what) {
  const uint8_t* p = r.take(count * sizeof(Src), what);
  std::vector<T> out(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<T>(load<Src>(p + i * sizeof(Src)));
  return out;
}

GgufValue read_value(Reader& r, uint32_t type, const std::string& what) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case kU8: v.v = static_cast<int64_t>(load<uint8_t>(r.take(1, what))); break;
    case kI8: v.v = static_cast<int64_t>(load<int8_t>(r.take(1, what))); break;
    case kU16: v.v = static_cast<int64_t>(load<uint16_t>(r.take(2, what))); break;
    case kI16: v.v = static_cast<int64_t>(load<int16_t>(r.take(2, what))); break;
    case kU32: v.v = static_cast<int64_t>(load<uint32_t>(r.take(4, what))); break;
    case kI32: v.v = static_cast<int64_t>(load<int32_t>(r.take(4, what))); break;
    case kI64: v.v = load<int64_t>(r.take(8, what)); break;
    case kU64: v.v = load<uint64_t>(r.take(8, what)); break;
    case kF32: v.v = static_cast<double>(load<float>(r.take(4, what))); break;
    case kF64: v.v = load<double>(r.take(8, what)); break;
    case kBool: v.v = read_bool(r.take(1, what)); break;
    case kString: v.v = r.str(what); break;
    case kArray: {
      const uint32_t et = r.u32(what);
      const uint64_t count = r.u64(what);
      v.array_type = et;
      if (et == kArray)
        fail(r.path(), what + ": arrays of arrays are not supported (nested GGUF array)");
      if (et >= kNumValueTypes)
        fail(r.path(), what + ": unknown GGUF array element type " + std::to_string(et) +
                           " (expected 0..12)");
      // Sanity bound before any allocation: each element takes at least this many bytes.
      const uint64_t min_elem = et == kString ? 8 : scalar_size(et);
      if (count > r.remaining() / min_elem)
        fail(r.path(), what + ": array of " + std::to_string(count) + " " + value_type_name(et) +
                           " elements needs at least " + std::to_string(min_elem) +
                           " bytes each, but only " + std::to_string(r.remaining()) +
                           " bytes remain in the file: the file is truncated or corrupt");
      if (count > kMaxArrayElems)
        fail(r.path(), what + ": array of " + std::to_string(count) + " " + value_type_name(et) +
                           " elements is implausibly large (limit " +
                           std::to_string(kMaxArrayElems) + "): the file is corrupt");
      const std::string ew = what + " (array of " + std::to_string(count) + " " +
                             value_type_name(et) + ")";
      GgufValue::Array a;
      switch (et) {
        case kU8: a = read_scalars<int64_t, uint8_t>(r, count, ew); break;
        case kI8: a = read_scalars<int64_t, int8_t>(r, count, ew); break;
        case kU16: a = read_scalars<int64_t, uint16_t>(r, count, ew); break;
        case kI16: a = read_scalars<int64_t, int16_t>(r, count, ew); break;
        case kU32: a = read_scalars<int64_t, uint32_t>(r, count, ew); break;
        case kI32: a = read_scalars<int64_t, int32_t>(r, count, ew); break;
        case kI64: a = read_scalars<int64_t, int64_t>(r, count, ew); break;
        case kU64: a = read_scalars<uint64_t, uint64_t>(r, count, ew); break;
        case kF32: a = read_scalars<double, float>(r, count, ew); break;
        case kF64: a = read_scalars<double, double>(r, count, ew); break;
        case kBool: {
          const uint8_t* p = r.take(count, ew);
          std::vector<bool> b(static_cast<size_t>(count));
          for (uint64_t i = 0; i < count; ++i) b[i] = read_bool(p + i);
          a = std::move(b);
          break;
        }
        case kString: {
          std::vector<std::string> s;
          s.reserve(static_cast<size_t>(std::min(count, kMaxReserve)));
          for (uint64_t i = 0; i < count; ++i) s.push_back(r.str(ew));
          a = std::move(s);
          break;
        }
      }
      v.v = std::move(a);
      break;
    }
    default:
      fail(r.path(), what + ": unknown GGUF value type " + std::to_string(type) +
                         " (expected 0..12)");
  }
  return v;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string supported_types() {
  std::string s;
  for (uint32_t id = 0; id < 64; ++id)
    if (ggml_type_supported(id)) s += (s.empty() ? "" : ", ") + ggml_type_name(id);
  return s;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.file_ = MappedFile::open(path);
  const MappedFile& f = *g.file_;
  Reader r(f);

  // --- header ---
  const uint8_t* magic = r.take(4, "GGUF magic (first 4 bytes)");
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    char hex[64];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
    fail(path, std::string("not a GGUF file: it starts with bytes ") + hex +
                   ", expected the magic 'GGUF' (47 47 55 46)");
  }
  const uint32_t version = r.u32("GGUF version");
  if (version == 1)
    fail(path, "GGUF version 1 is not supported (it uses 32-bit counts and lengths); "
               "convert the model again with a current llama.cpp to get version 3");
  if (version != 0 && (version & 0xffffu) == 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "big-endian GGUF files are not supported (the version field reads 0x%08x, "
                  "a byte-swapped version %u)",
                  version, __builtin_bswap32(version));
    fail(path, buf);
  }
  if (version != 2 && version != 3)
    fail(path, "unsupported GGUF version " + std::to_string(version) + " (supported: 2, 3)");
  g.version_ = version;
  const uint64_t n_tensors = r.u64("GGUF tensor count");
  const uint64_t n_kv = r.u64("GGUF metadata entry count");
  // Sanity bounds before any loop or allocation: a metadata entry takes at least 8 (key length)
  // + 4 (type) + 1 bytes, a tensor info at least 8 (name length) + 4 + 4 + 8 bytes.
  if (n_kv > r.remaining() / 13)
    fail(path, "header claims " + std::to_string(n_kv) + " metadata entries, but only " +
                   std::to_string(r.remaining()) + " bytes follow (at least 13 per entry): "
                   "the file is truncated or its header is corrupt");
  if (n_tensors > r.remaining() / 24)
    fail(path, "header claims " + std::to_string(n_tensors) + " tensors, but only " +
                   std::to_string(r.remaining()) + " bytes follow (at least 24 per tensor "
                   "info): the file is truncated or its header is corrupt");

  // --- metadata ---
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string ctx =
        "metadata entry " + std::to_string(i + 1) + " of " + std::to_string(n_kv);
    std::string key = r.str(ctx + " (key)");
    const std::string what = "metadata '" + key + "' (" + ctx + ")";
    const uint32_t type = r.u32(what + " value type");
    GgufValue v = read_value(r, type, what);
    if (!g.metadata_.emplace(key, std::move(v)).second)
      fail(path, "metadata key '" + key + "' appears twice (" + ctx + ")");
  }

  if (auto it = g.metadata_.find("general.alignment"); it != g.metadata_.end()) {
    // ggml and gguf-py both require UINT32 here.
    if (it->second.type != kU32)
      fail(path, "metadata 'general.alignment' has type " + describe_type(it->second) +
                     ", expected UINT32");
    const int64_t a = std::get<int64_t>(it->second.v);
    if (a <= 0 || (a & (a - 1)) != 0)
      fail(path, "metadata 'general.alignment' is " + std::to_string(a) +
                     ", expected a power of two");
    g.alignment_ = static_cast<uint64_t>(a);
  }

  // --- tensor infos ---
  g.tensors_.reserve(static_cast<size_t>(std::min(n_tensors, kMaxReserve)));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string ctx =
        "tensor info " + std::to_string(i + 1) + " of " + std::to_string(n_tensors);
    GgufTensorInfo t;
    t.name = r.str(ctx + " (name)");
    const std::string what = "tensor '" + t.name + "' (" + ctx + ")";
    const uint32_t n_dims = r.u32(what + " dimension count");
    if (n_dims > kMaxDims)
      fail(path, what + " has " + std::to_string(n_dims) + " dimensions, at most " +
                     std::to_string(kMaxDims) + " are allowed");
    const uint8_t* dims = r.take(8ull * n_dims, what + " dimensions");
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = load<uint64_t>(dims + 8 * d);
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(path, what + " dimension " + std::to_string(d) + " is " + std::to_string(ne) +
                       ", larger than INT64_MAX");
      t.shape.push_back(static_cast<int64_t>(ne));
    }
    t.type = r.u32(what + " type");
    t.offset = r.u64(what + " data offset");
    t.data = nullptr;
    t.nbytes = 0;
    g.tensors_.push_back(std::move(t));
  }

  // --- tensor data: the section starts at the next multiple of the alignment ---
  const uint64_t a = g.alignment_;
  const uint64_t data_start = (r.pos() + a - 1) / a * a;
  std::unordered_set<std::string> names;
  for (size_t i = 0; i < g.tensors_.size(); ++i) {
    GgufTensorInfo& t = g.tensors_[i];
    const std::string what = "tensor '" + t.name + "'";
    if (!names.insert(t.name).second) fail(path, what + " appears twice in the tensor list");
    int64_t n = 1;
    for (int64_t ne : t.shape)
      if (__builtin_mul_overflow(n, ne, &n))
        fail(path, what + " shape " + shape_str(t.shape) + " overflows a 64-bit element count");
    if (t.offset % a != 0)
      fail(path, what + " data offset " + std::to_string(t.offset) +
                     " is not a multiple of the alignment " + std::to_string(a));
    if (t.offset > f.size())
      fail(path, what + " data offset " + std::to_string(t.offset) +
                     " lies past the end of the file (" + std::to_string(f.size()) +
                     " bytes): the file is truncated or its header is corrupt");
    const int64_t be = ggml_block_elems(static_cast<GgmlType>(t.type));
    if (be > 0) {
      const int64_t ne0 = t.shape.empty() ? 1 : t.shape[0];
      if (ne0 % be != 0)
        fail(path, what + " has row length ne[0] = " + std::to_string(ne0) +
                       ", not a multiple of the " + ggml_type_name(t.type) + " block size " +
                       std::to_string(be));
      t.nbytes = ggml_nbytes(static_cast<GgmlType>(t.type), n, path + ": " + what);
    }
    // Unknown type ids: the byte size is unknown, so only the start is checked here;
    // dequantize() reports the type by name.
    t.data = f.span(data_start + t.offset, t.nbytes,
                    what + " data (" + ggml_type_name(t.type) + ", shape " + shape_str(t.shape) +
                        ", " + std::to_string(t.nbytes) + " bytes at data offset " +
                        std::to_string(t.offset) + ")");
  }
  return g;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

const GgufValue& lookup(const std::map<std::string, GgufValue>& m, const std::string& path,
                        const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) fail(path, "metadata key '" + key + "' is missing");
  return it->second;
}

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const GgufValue& v,
                             const char* expected) {
  fail(path, "metadata '" + key + "' has type " + describe_type(v) + ", expected " + expected);
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* s = std::get_if<std::string>(&v.v)) return *s;
  wrong_type(path(), key, v, "STRING");
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(path(), "metadata '" + key + "' is " + std::to_string(*u) + ", larger than INT64_MAX");
    return static_cast<int64_t>(*u);
  }
  wrong_type(path(), key, v, "an integer");
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* d = std::get_if<double>(&v.v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v.v)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return static_cast<double>(*u);
  wrong_type(path(), key, v, "a number");
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b;
  wrong_type(path(), key, v, "BOOL");
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* a = std::get_if<GgufValue::Array>(&v.v))
    if (const auto* s = std::get_if<std::vector<std::string>>(a)) return *s;
  wrong_type(path(), key, v, "ARRAY of STRING");
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* a = std::get_if<GgufValue::Array>(&v.v)) {
    if (const auto* d = std::get_if<std::vector<double>>(a)) return *d;
    if (const auto* i = std::get_if<std::vector<int64_t>>(a))
      return std::vector<double>(i->begin(), i->end());
    if (const auto* u = std::get_if<std::vector<uint64_t>>(a))
      return std::vector<double>(u->begin(), u->end());
  }
  wrong_type(path(), key, v, "an ARRAY of numbers");
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = lookup(metadata_, path(), key);
  if (const auto* a = std::get_if<GgufValue::Array>(&v.v)) {
    if (const auto* i = std::get_if<std::vector<int64_t>>(a)) return *i;
    if (const auto* u = std::get_if<std::vector<uint64_t>>(a)) {
      std::vector<int64_t> out;
      out.reserve(u->size());
      for (uint64_t x : *u) {
        if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          fail(path(), "metadata '" + key + "' holds " + std::to_string(x) +
                           ", larger than INT64_MAX");
        out.push_back(static_cast<int64_t>(x));
      }
      return out;
    }
  }
  wrong_type(path(), key, v, "an ARRAY of integers");
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  const std::string where = "tensor '" + t.name + "' of file " + path();
  if (!ggml_type_supported(t.type))
    throw Error("unsupported ggml type " + std::to_string(t.type) + "/" + ggml_type_name(t.type) +
                " in " + where + " (supported: " + supported_types() + ")");
  const GgmlType type = static_cast<GgmlType>(t.type);
  int64_t n = 1;
  for (int64_t ne : t.shape)
    if (ne < 0 || __builtin_mul_overflow(n, ne, &n))
      fail(where, "shape " + shape_str(t.shape) + " is not a valid element count");
  const uint64_t nbytes = ggml_nbytes(type, n, where + " (" + ggml_type_name(t.type) + ")");
  if (nbytes != t.nbytes || (nbytes > 0 && t.data == nullptr))
    fail(where, ggml_type_name(t.type) + " shape " + shape_str(t.shape) + " needs " +
                    std::to_string(nbytes) + " bytes, the tensor info holds " +
                    std::to_string(t.nbytes));
  // The tensor must point into this file's mapping (tensor infos from another file do not).
  const uint8_t* base = file_->data();
  if (nbytes > 0 && (t.data < base || static_cast<uint64_t>(t.data - base) > file_->size() ||
                     nbytes > file_->size() - static_cast<uint64_t>(t.data - base)))
    fail(where, "tensor data does not lie inside this file's mapping");

  std::vector<float> out(static_cast<size_t>(n));  // [ne3, ne2, ne1, ne0], ne0 fastest
  // Large tensors are split over threads at block boundaries; blocks are independent.
  const int64_t be = ggml_block_elems(type), bb = ggml_block_bytes(type);
  const int64_t n_blocks = n / be;
  constexpr int64_t kMinBlocksPerThread = (1 << 18) / 32;
  int n_threads = static_cast<int>(std::min<int64_t>(
      std::max(1u, std::thread::hardware_concurrency()), n_blocks / kMinBlocksPerThread));
  n_threads = std::clamp(n_threads, 1, 16);
  if (n_threads == 1) {
    ggml_dequantize(type, t.data, out.data(), n);
    return out;
  }
  std::vector<std::thread> pool;
  const int64_t per = (n_blocks + n_threads - 1) / n_threads;
  for (int k = 0; k < n_threads; ++k) {
    const int64_t b0 = k * per, b1 = std::min(n_blocks, b0 + per);
    if (b0 >= b1) break;
    pool.emplace_back([&, b0, b1] {
      ggml_dequantize(type, t.data + b0 * bb, out.data() + b0 * be, (b1 - b0) * be);
    });
  }
  for (std::thread& th : pool) th.join();
  return out;
}

}  // namespace edgewise
