// safetensors reader. Layout (huggingface/safetensors, docs "Format"): 8-byte little-endian
// header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
// Everything is validated at open time: the header fits in the file, the JSON is an object of
// well-formed entries, each dtype is known, end - begin == prod(shape) * dtype size (no
// overflow), every range lies inside the data section and no two ranges overlap.
// safetensors_write writes the same layout (packed data, wider dtypes first, header padded to 8).
// Not here: lazy partial validation, big-endian hosts.
#include "edgewise/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

#include "edgewise/circuit.h"  // write_file_atomic
#include "edgewise/error.h"
#include <set>

namespace edgewise {

namespace {

struct DTypeInfo {
  StDType t;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {StDType::F64, "F64", 8}, {StDType::F32, "F32", 4},   {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2}, {StDType::I64, "I64", 8}, {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2}, {StDType::I8, "I8", 1},     {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1},
};

// A header larger than this is not a safetensors file we want to parse (the format's own
// reader caps it at 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

size_t st_dtype_size(StDType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.size;
  return 0;
}

const char* st_dtype_name(StDType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.name;
  return "?";
}

void SafetensorsFile::drop_pages(const void* p, size_t n) const { file_->drop_pages(p, n); }

const StTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const MappedFile& m = *f.file_;
  if (m.size() < 8)
    fail(path, "not a safetensors file: " + std::to_string(m.size()) +
                   " bytes, expected at least the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | m.data()[i];
  if (n > m.size() - 8)
    fail(path, "header length " + std::to_string(n) + " lies past the end of the file (" +
                   std::to_string(m.size()) + " bytes): truncated or not a safetensors file");
  if (n > kMaxHeader)
    fail(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n < 2 || m.data()[8] != '{')
    fail(path, "not a safetensors file: the header does not start with a JSON object");

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(m.data() + 8, m.data() + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!h.is_object()) fail(path, "header is not a JSON object");

  const uint64_t data_start = 8 + n;
  const uint64_t data_size = m.size() - data_start;

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const auto& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (auto mi = e.begin(); mi != e.end(); ++mi) {
        if (!mi.value().is_string())
          fail(path, "__metadata__ entry '" + mi.key() + "' is not a string");
        f.metadata_[mi.key()] = mi.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!e.is_object()) fail(where, "header entry is not a JSON object");
    if (!e.contains("dtype") || !e["dtype"].is_string()) fail(where, "missing or non-string dtype");
    if (!e.contains("shape") || !e["shape"].is_array()) fail(where, "missing or non-array shape");
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() ||
        e["data_offsets"].size() != 2)
      fail(where, "data_offsets must be an array [begin, end]");

    StTensor t;
    t.name = name;
    const std::string dt = e["dtype"].get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const auto& d : kDTypes)
      if (dt == d.name) info = &d;
    if (!info)
      fail(where, "unknown dtype '" + dt + "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    t.dtype = info->t;

    // numel * element size, refusing overflow: every factor is checked against the file size.
    uint64_t bytes = info->size;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(where, "shape " + e["shape"].dump() + " has a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && bytes > std::numeric_limits<uint64_t>::max() / dim)
        fail(where, "shape " + e["shape"].dump() + " is too large");
      bytes *= dim;
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() && !(off[0].is_number_integer() && off[0].get<int64_t>() >= 0))
      fail(where, "data_offsets begin is not a non-negative integer");
    if (!off[1].is_number_unsigned() && !(off[1].is_number_integer() && off[1].get<int64_t>() >= 0))
      fail(where, "data_offsets end is not a non-negative integer");
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (en < b)
      fail(where, "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                      "] end before begin");
    if (en - b != bytes)
      fail(where, "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] hold " +
                      std::to_string(en - b) + " bytes but " + info->name + " shape " +
                      shape_str(t.shape) + " needs " + std::to_string(bytes));
    if (en > data_size)
      fail(where, "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                      "] lie past the end of the data section (" + std::to_string(data_size) +
                      " bytes): the file is truncated");
    t.nbytes = bytes;
    t.data = m.span(data_start + b, bytes, "tensor '" + name + "' data");
    f.tensors_.emplace(name, std::move(t));
  }

  // No two tensors may share bytes (empty tensors own no bytes).
  std::vector<const StTensor*> order;
  for (const auto& [k, t] : f.tensors_)
    if (t.nbytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const StTensor* a, const StTensor* b) { return a->data < b->data; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i - 1]->data + order[i - 1]->nbytes > order[i]->data)
      fail(path + ": tensor '" + order[i]->name + "'",
           "data overlaps tensor '" + order[i - 1]->name + "'");
  }
  return f;
}

void safetensors_write(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // The format wants the data section packed (each tensor starts where the previous one ends;
  // the `safetensors` library refuses gaps), so alignment comes from the order: wider dtypes
  // first, as its own writer does, after a header padded to a multiple of 8 bytes.
  std::vector<const StWriteTensor*> order;
  for (const StWriteTensor& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const StWriteTensor* a, const StWriteTensor* b) {
    return st_dtype_size(a->dtype) > st_dtype_size(b->dtype);
  });
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t off = 0;
  for (const StWriteTensor* t : order) {
    if (!names.insert(t->name).second || t->name == "__metadata__")
      fail(path + ": tensor '" + t->name + "'", "the name is used twice (or reserved)");
    uint64_t n = st_dtype_size(t->dtype);
    for (int64_t d : t->shape) {
      if (d < 0) fail(path + ": tensor '" + t->name + "'", "negative dimension in shape " + shape_str(t->shape));
      n *= static_cast<uint64_t>(d);
    }
    if (n != t->nbytes)
      fail(path + ": tensor '" + t->name + "'", std::to_string(t->nbytes) + " bytes given but " +
                                                     st_dtype_name(t->dtype) + " shape " + shape_str(t->shape) +
                                                     " needs " + std::to_string(n));
    h[t->name] = {{"dtype", st_dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t hl = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((hl >> (8 * i)) & 0xff);
  out += header;
  out.reserve(out.size() + off);
  for (const StWriteTensor* t : order)
    if (t->nbytes) out.append(static_cast<const char*>(t->data), t->nbytes);
  write_file_atomic(path, out);
}

}  // namespace edgewise
