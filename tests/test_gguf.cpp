// GGUF reader and ggml dequantisation against the `gguf` package (gguf-py, llama.cpp's own
// reference reader): every expectation here comes from tests/reference/gguf_golden.py.
//  - dequantisation of every supported type, bit for bit, against gguf.quants.dequantize;
//  - metadata of every value type, tensor tables and alignment of GGUFWriter files (v3, v2,
//    default alignment) against GGUFReader;
//  - corrupted files (golden bad/*.gguf), every truncation length and random header mutations:
//    an edgewise::Error naming the file, never a crash;
//  - the default model (when installed): metadata, tensor table, and a bitwise checksum of every
//    dequantised tensor, plus the time to dequantise all of it.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "edgewise/hf.h"
#include "test_helpers.h"

using edgewise::GgmlType;
using edgewise::GgufFile;
using edgewise::GgufTensorInfo;
using edgewise::GgufValue;
using nlohmann::json;

namespace {

const char* kFixture = "gguf_golden";

std::string golden(const std::string& f) { return ewtest::golden(kFixture, f); }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return json::parse(in);
}

void write_bytes(const std::string& path, const uint8_t* p, size_t n) {
  std::filesystem::remove(path);  // a fresh file, not a truncation (ext4 flushes those)
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n));
}

// A minimal safetensors reader for golden files (written by the python `safetensors` package),
// independent of edgewise's own reader: 8-byte header length, JSON header, raw data.
struct Golden {
  std::vector<uint8_t> bytes;
  json header;
  size_t base = 0;

  explicit Golden(const std::string& path) : bytes(read_bytes(path)) {
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
    base = 8 + n;
  }
  bool has(const std::string& k) const { return header.contains(k); }
  std::vector<uint8_t> u8(const std::string& k) const {
    const json& e = header.at(k);
    EXPECT_EQ(e.at("dtype"), "U8") << k;
    const size_t b = e.at("data_offsets")[0], end = e.at("data_offsets")[1];
    return std::vector<uint8_t>(bytes.begin() + base + b, bytes.begin() + base + end);
  }
  std::vector<float> f32(const std::string& k) const {
    const json& e = header.at(k);
    EXPECT_EQ(e.at("dtype"), "F32") << k;
    const size_t b = e.at("data_offsets")[0], end = e.at("data_offsets")[1];
    std::vector<float> v((end - b) / 4);
    std::memcpy(v.data(), bytes.data() + base + b, end - b);
    return v;
  }
};

struct Diff {
  size_t mismatches = 0;  // bitwise
  double max_abs = 0;     // over elements where both are finite
  size_t first = SIZE_MAX;
};

Diff compare_bits(const float* got, const float* want, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, got + i, 4);
    std::memcpy(&b, want + i, 4);
    if (a != b) {
      if (d.first == SIZE_MAX) d.first = i;
      ++d.mismatches;
    }
    if (std::isfinite(got[i]) && std::isfinite(want[i]))
      d.max_abs = std::max(d.max_abs, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  return d;
}

// gguf-py's type table: name -> id (quant_sizes.json).
std::map<std::string, uint32_t> type_ids() {
  std::map<std::string, uint32_t> m;
  const json sizes = read_json(golden("quant_sizes.json"));  // must outlive the loop
  for (auto& [name, e] : sizes.items()) m[name] = e.at("id");
  return m;
}

// sum_i bits(x[i]) * (i + 1) mod 2^64, as bit_checksum in gguf_golden.py.
uint64_t bit_checksum(const std::vector<float>& x) {
  uint64_t acc = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &x[i], 4);
    acc += static_cast<uint64_t>(b) * static_cast<uint64_t>(i + 1);
  }
  return acc;
}

// Compares one metadata value with GGUFReader's (type ids, then the value).
void expect_value(const GgufValue& v, const json& e, const std::string& key) {
  SCOPED_TRACE("metadata key " + key);
  EXPECT_EQ(v.type, e.at("type").get<uint32_t>());
  EXPECT_EQ(v.array_type, e.at("array_type").get<uint32_t>());
  const json& w = e.at("value");
  if (auto* i = std::get_if<int64_t>(&v.v)) {
    EXPECT_EQ(*i, w.get<int64_t>());
  } else if (auto* u = std::get_if<uint64_t>(&v.v)) {
    EXPECT_EQ(*u, w.get<uint64_t>());
  } else if (auto* d = std::get_if<double>(&v.v)) {
    EXPECT_EQ(*d, w.get<double>());  // float32 values widen exactly; JSON keeps doubles exactly
  } else if (auto* b = std::get_if<bool>(&v.v)) {
    EXPECT_EQ(*b, w.get<bool>());
  } else if (auto* s = std::get_if<std::string>(&v.v)) {
    EXPECT_EQ(*s, w.get<std::string>());
  } else {
    const auto& a = std::get<GgufValue::Array>(v.v);
    ASSERT_TRUE(w.is_array());
    if (auto* ai = std::get_if<std::vector<int64_t>>(&a)) {
      EXPECT_EQ(*ai, w.get<std::vector<int64_t>>());
    } else if (auto* au = std::get_if<std::vector<uint64_t>>(&a)) {
      EXPECT_EQ(*au, w.get<std::vector<uint64_t>>());
    } else if (auto* ad = std::get_if<std::vector<double>>(&a)) {
      EXPECT_EQ(*ad, w.get<std::vector<double>>());
    } else if (auto* ab = std::get_if<std::vector<bool>>(&a)) {
      EXPECT_EQ(*ab, w.get<std::vector<bool>>());
    } else {
      const auto& as = std::get<std::vector<std::string>>(a);
      const auto ws = w.get<std::vector<std::string>>();
      ASSERT_EQ(as.size(), ws.size());
      size_t bad = 0;
      for (size_t i = 0; i < as.size(); ++i) bad += as[i] != ws[i];
      EXPECT_EQ(bad, 0u) << "string array elements differ";
    }
  }
}

void expect_metadata(const GgufFile& g, const json& desc) {
  const json& meta = desc.at("metadata");
  EXPECT_EQ(g.metadata().size(), meta.size());
  for (auto& [key, e] : meta.items()) {
    auto it = g.metadata().find(key);
    ASSERT_NE(it, g.metadata().end()) << "missing metadata key " << key;
    expect_value(it->second, e, key);
  }
}

// Tensor table against GGUFReader; data pointers relative to the first tensor's.
void expect_tensor_table(const GgufFile& g, const json& desc) {
  const json& ts = desc.at("tensors");
  ASSERT_EQ(g.tensors().size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const GgufTensorInfo& t = g.tensors()[i];
    const json& e = ts[i];
    SCOPED_TRACE("tensor " + t.name);
    EXPECT_EQ(t.name, e.at("name").get<std::string>());
    EXPECT_EQ(t.type, e.at("type").get<uint32_t>());
    EXPECT_EQ(edgewise::ggml_type_name(t.type), e.at("type_name").get<std::string>());
    EXPECT_EQ(t.shape, e.at("shape").get<std::vector<int64_t>>());
    EXPECT_EQ(t.offset, e.at("offset").get<uint64_t>());
    EXPECT_EQ(t.nbytes, e.at("nbytes").get<uint64_t>());
    EXPECT_EQ(t.offset % g.alignment(), 0u);
    EXPECT_EQ(t.data - g.tensors()[0].data,
              static_cast<ptrdiff_t>(e.at("offset").get<uint64_t>() -
                                     ts[0].at("offset").get<uint64_t>()));
    EXPECT_EQ(g.find_tensor(t.name), &t);
  }
  EXPECT_EQ(g.find_tensor("no.such.tensor"), nullptr);
}

void expect_tensor_values(const GgufFile& g, const Golden& exp) {
  for (const GgufTensorInfo& t : g.tensors()) {
    const std::vector<float> want = exp.f32(t.name);
    const std::vector<float> got = g.dequantize(t);
    ASSERT_EQ(got.size(), want.size()) << t.name;
    const Diff d = compare_bits(got.data(), want.data(), got.size());
    std::printf("  %-10s %-5s n=%-5zu max|diff|=%g bit mismatches=%zu\n", t.name.c_str(),
                edgewise::ggml_type_name(t.type).c_str(), got.size(), d.max_abs, d.mismatches);
    EXPECT_EQ(d.mismatches, 0u) << t.name;
  }
}

// Runs f, expecting an edgewise::Error whose message contains every string in `needles`.
template <class F>
std::string expect_error(F&& f, const std::vector<std::string>& needles, const std::string& ctx) {
  try {
    f();
  } catch (const edgewise::Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos)
          << ctx << ": message lacks '" << n << "': " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << ctx << ": expected edgewise::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << ctx << ": expected edgewise::Error, nothing was thrown";
  return "";
}

// A scratch directory, in /dev/shm when there is one: the truncation test rewrites a file
// 22,000 times, and on a disk file system each rewrite may force a flush.
struct TempDir {
  std::filesystem::path dir;
  TempDir() {
    std::error_code ec;
    const std::filesystem::path shm = "/dev/shm";
    const bool use_shm = std::filesystem::is_directory(shm, ec) && ::access("/dev/shm", W_OK) == 0;
    dir = (use_shm ? shm : std::filesystem::temp_directory_path()) /
          ("edgewise_test_gguf_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// Opens and dequantises everything supported; Error is the only acceptable failure.
void open_and_read_all(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  for (const GgufTensorInfo& t : g.tensors())
    if (edgewise::ggml_type_supported(t.type)) (void)g.dequantize(t);
}

}  // namespace

// ----------------------------------------------------------------------------- type table

TEST(Gguf, TypeTableMatchesGgufPy) {
  const json sizes = read_json(golden("quant_sizes.json"));
  ASSERT_GE(sizes.size(), 30u);
  for (auto& [name, e] : sizes.items()) {
    const uint32_t id = e.at("id");
    EXPECT_EQ(edgewise::ggml_type_name(id), name);
    EXPECT_EQ(edgewise::ggml_block_elems(static_cast<GgmlType>(id)), e.at("block_elems").get<int64_t>())
        << name;
    EXPECT_EQ(edgewise::ggml_block_bytes(static_cast<GgmlType>(id)), e.at("block_bytes").get<int64_t>())
        << name;
  }
  EXPECT_EQ(edgewise::ggml_type_name(999), "type999");
  EXPECT_EQ(edgewise::ggml_block_elems(static_cast<GgmlType>(999)), 0);
  for (const char* t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K",
                        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "I8", "I16", "I32", "I64", "F64"})
    EXPECT_TRUE(edgewise::ggml_type_supported(sizes.at(t).at("id").get<uint32_t>())) << t;
  EXPECT_FALSE(edgewise::ggml_type_supported(sizes.at("IQ2_XXS").at("id").get<uint32_t>()));
  EXPECT_FALSE(edgewise::ggml_type_supported(999));
}

// ----------------------------------------------------------------------------- dequantisation

// Tolerance: none (bitwise equality). ggml / gguf-py compute d * q - m in float32; with f16
// scales (11 significant bits) and small integer quants every product is exact in float32
// (Q6_K's (d * sc) * q excepted, done in gguf-py's order), so only the final +/- m rounds and
// operation order or FMA cannot change a bit. A wrong nibble, bit plane or scale index shows up
// as mismatches here (checked by breaking Q4_1 and Q6_K on purpose).
TEST(Gguf, DequantizeMatchesGgufPyBitForBit) {
  const json cases = read_json(golden("dequant.json"));
  const Golden g(golden("dequant.safetensors"));
  const auto ids = type_ids();
  std::set<std::string> seen;
  for (auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const std::string type = c.at("type");
    const uint32_t id = ids.at(type);
    const GgmlType t = static_cast<GgmlType>(id);
    const std::vector<uint8_t> raw = g.u8(name + ".raw");
    const std::vector<float> want = g.f32(name + ".expected");
    const int64_t n = c.at("n");
    ASSERT_EQ(static_cast<int64_t>(want.size()), n);
    ASSERT_EQ(edgewise::ggml_nbytes(t, n, name), raw.size());
    std::vector<float> got(static_cast<size_t>(n), -12345.0f);
    edgewise::ggml_dequantize(t, raw.data(), got.data(), n);
    const Diff d = compare_bits(got.data(), want.data(), got.size());
    std::printf("  %-18s %-5s n=%-6lld max|diff|=%g bit mismatches=%zu  (reference: %s)\n",
                name.c_str(), type.c_str(), static_cast<long long>(n), d.max_abs, d.mismatches,
                c.at("reference").get<std::string>().c_str());
    EXPECT_EQ(d.mismatches, 0u) << "first mismatch at " << d.first << ": got " << got[d.first]
                                << ", gguf-py " << want[d.first];
    seen.insert(type);
  }
  for (const char* t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K",
                        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "I8", "I16", "I32", "I64", "F64"})
    EXPECT_TRUE(seen.count(t)) << "no golden case for " << t;
}

TEST(Gguf, DequantizeRejectsBadArguments) {
  std::vector<uint8_t> src(1024);
  std::vector<float> dst(1024);
  expect_error([&] { edgewise::ggml_dequantize(GgmlType::Q4_0, src.data(), dst.data(), 33); },
               {"33", "block size 32"}, "Q4_0 with 33 elements");
  expect_error([&] { edgewise::ggml_nbytes(GgmlType::Q4_K, 100, "here"); },
               {"here", "100", "Q4_K", "256"}, "Q4_K nbytes of 100");
  expect_error([&] { edgewise::ggml_nbytes(static_cast<GgmlType>(77), 32, "here"); },
               {"here", "77"}, "unknown type nbytes");
  expect_error([&] { edgewise::ggml_dequantize(static_cast<GgmlType>(16), src.data(), dst.data(), 256); },
               {"IQ2_XXS"}, "IQ2_XXS");
  EXPECT_EQ(edgewise::ggml_nbytes(GgmlType::Q6_K, 512, "x"), 420u);
  EXPECT_EQ(edgewise::ggml_nbytes(GgmlType::BF16, 3, "x"), 6u);
}

// ----------------------------------------------------------------------------- GGUF files

TEST(Gguf, MetadataTensorsAndAlignmentV3) {
  const json desc = read_json(golden("meta.json"));
  GgufFile g = GgufFile::open(golden("meta.gguf"));
  EXPECT_EQ(g.path(), golden("meta.gguf"));
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.alignment(), desc.at("alignment").get<uint64_t>());
  expect_metadata(g, desc);
  expect_tensor_table(g, desc);
  expect_tensor_values(g, Golden(golden("meta.expected.safetensors")));
}

TEST(Gguf, VersionTwoFile) {
  const json desc = read_json(golden("meta_v2.json"));
  ASSERT_EQ(desc.at("version"), 2);
  GgufFile g = GgufFile::open(golden("meta_v2.gguf"));
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.alignment(), 64u);
  expect_metadata(g, desc);
  expect_tensor_table(g, desc);
  expect_tensor_values(g, Golden(golden("meta.expected.safetensors")));
}

TEST(Gguf, DefaultAlignmentIs32) {
  const json desc = read_json(golden("default_align.json"));
  GgufFile g = GgufFile::open(golden("default_align.gguf"));
  EXPECT_FALSE(g.has("general.alignment"));
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(desc.at("alignment"), 32);
  expect_metadata(g, desc);
  expect_tensor_table(g, desc);
  expect_tensor_values(g, Golden(golden("default_align.expected.safetensors")));
}

TEST(Gguf, TypedGetters) {
  const std::string path = golden("meta.gguf");
  GgufFile g = GgufFile::open(path);
  // Values as written by gguf_golden.py's GGUFWriter calls.
  EXPECT_EQ(g.get_int("test.u8"), 200);
  EXPECT_EQ(g.get_int("test.i8"), -100);
  EXPECT_EQ(g.get_int("test.u32"), 4000000000LL);
  EXPECT_EQ(g.get_int("test.i64"), INT64_MIN);
  EXPECT_EQ(g.get_float("test.f32"), static_cast<double>(3.14159f));
  EXPECT_EQ(g.get_float("test.i32"), -2000000000.0);
  EXPECT_EQ(g.get_float("test.f64"), 2.718281828459045);
  EXPECT_TRUE(g.get_bool("test.bool_t"));
  EXPECT_FALSE(g.get_bool("test.bool_f"));
  EXPECT_EQ(g.get_string("test.str"), "h\xc3\xa9llo \xe2\x9c\x93 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80");
  EXPECT_EQ(g.get_string("test.empty_str"), "");
  EXPECT_EQ(g.get_string("general.architecture"), "testarch");
  EXPECT_EQ(g.get_string_array("test.arr.string"),
            (std::vector<std::string>{"a", "", "\xc3\xbc", "tokens with spaces", "\xc4\xa0the"}));
  EXPECT_EQ(g.get_string_array("test.arr.many_strings").size(), 1000u);
  EXPECT_EQ(g.get_float_array("test.arr.float32"),
            (std::vector<double>{1.5, -2.25, static_cast<double>(1e-8f), static_cast<double>(3.4e38f)}));
  EXPECT_EQ(g.get_float_array("test.arr.int16"), (std::vector<double>{-32768, 32767}));
  EXPECT_EQ(g.get_int_array("test.arr.int64"), (std::vector<int64_t>{INT64_MIN, INT64_MAX}));
  EXPECT_EQ(g.get_int_array("test.arr.uint8"), (std::vector<int64_t>{0, 255, 7}));
  // Errors name the file and the key.
  expect_error([&] { g.get_int("test.u64"); }, {path, "test.u64", "INT64_MAX"}, "u64 max");
  expect_error([&] { g.get_string("test.u8"); }, {path, "test.u8", "UINT8", "STRING"}, "type");
  expect_error([&] { g.get_int("no.such.key"); }, {path, "no.such.key", "missing"}, "missing");
  expect_error([&] { g.get_bool("test.str"); }, {path, "test.str"}, "bool");
  expect_error([&] { g.get_string_array("test.arr.int8"); }, {path, "ARRAY of INT8"}, "arr");
  expect_error([&] { g.get_int_array("test.arr.uint64"); }, {path, "INT64_MAX"}, "u64 arr");
  expect_error([&] { g.get_int_array("test.arr.float64"); }, {path, "FLOAT64"}, "f64 arr");
}

// ----------------------------------------------------------------------------- bad files

TEST(Gguf, CorruptedFilesRaiseErrorNamingTheFile) {
  const json cases = read_json(golden("bad.json"));
  ASSERT_GE(cases.size(), 30u);
  for (const json& c : cases) {
    const std::string name = c.at("name"), file = c.at("file"), expect = c.at("expect");
    std::string msg;
    if (c.at("stage") == "open") {
      msg = expect_error([&] { GgufFile::open(file); }, {file, expect}, name);
    } else {
      // Opens (the type's size is known or the tensor is last); dequantising it fails.
      GgufFile g = GgufFile::open(file);
      const std::string tname = c.at("tensor");
      const GgufTensorInfo* t = g.find_tensor(tname);
      ASSERT_NE(t, nullptr) << name;
      msg = expect_error([&] { g.dequantize(*t); }, {file, "'" + tname + "'", expect, "supported: "},
                         name);
      for (const GgufTensorInfo& o : g.tensors()) {
        if (o.name != tname) {
          EXPECT_NO_THROW(g.dequantize(o)) << name << " " << o.name;
        }
      }
    }
    std::printf("  %-26s %s\n", name.c_str(), msg.c_str());
  }
}

// Every prefix of a valid file: shorter than the end of the last tensor's data -> Error naming
// the file; from there on (only the final padding missing) -> opens and reads.
TEST(Gguf, EveryTruncationLength) {
  const json desc = read_json(golden("meta.json"));
  const std::vector<uint8_t> bytes = read_bytes(golden("meta.gguf"));
  const size_t min_valid = desc.at("min_valid_size");
  ASSERT_EQ(bytes.size(), desc.at("size").get<size_t>());
  ASSERT_LT(min_valid, bytes.size());
  TempDir tmp;
  const std::string path = (tmp.dir / "trunc.gguf").string();
  size_t errors = 0, ok = 0;
  for (size_t len = 0; len <= bytes.size(); ++len) {
    write_bytes(path, bytes.data(), len);
    if (len < min_valid) {
      expect_error([&] { open_and_read_all(path); }, {path}, "prefix " + std::to_string(len));
      ++errors;
    } else {
      EXPECT_NO_THROW(open_and_read_all(path)) << "prefix " << len;
      ++ok;
    }
    if (HasFailure()) break;
  }
  std::printf("  %zu truncated prefixes raised Error, %zu (padding only missing) opened\n", errors,
              ok);
}

// Random corruption of the header (magic .. end of tensor infos): open must either succeed or
// raise edgewise::Error — never crash, never throw anything else, never allocate wildly.
TEST(Gguf, RandomHeaderMutations) {
  const json desc = read_json(golden("meta.json"));
  const std::vector<uint8_t> bytes = read_bytes(golden("meta.gguf"));
  const size_t header_end = desc.at("data_offset");
  TempDir tmp;
  const std::string path = (tmp.dir / "mut.gguf").string();
  std::mt19937_64 rng(12345);
  int opened = 0, errors = 0;
  for (int it = 0; it < 3000; ++it) {
    std::vector<uint8_t> b = bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % header_end;
      if (rng() % 3 == 0 && pos + 8 <= b.size()) {
        const uint64_t v = rng() >> (rng() % 64);  // a random-magnitude 64-bit field
        std::memcpy(&b[pos], &v, 8);
      } else {
        b[pos] = static_cast<uint8_t>(rng());
      }
    }
    write_bytes(path, b.data(), b.size());
    try {
      open_and_read_all(path);
      ++opened;
    } catch (const edgewise::Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mutation " << it << ": non-Error exception: " << e.what();
    }
  }
  std::printf("  3000 mutated headers: %d raised Error, %d still valid\n", errors, opened);
  EXPECT_GT(errors, 1000);  // the mutations do hit checked fields
}

// ----------------------------------------------------------------------------- default model

TEST(Gguf, DefaultModelMatchesGgufPy) {
  const std::string jpath = golden("model.json");
  ASSERT_TRUE(ewtest::exists(jpath)) << "gguf_golden.py did not run";
  const json desc = read_json(jpath);
  if (!desc.at("present").get<bool>())
    GTEST_SKIP() << "default model not installed at " << desc.at("path").get<std::string>();
  const std::string path = desc.at("path");
  std::printf("  model: %s\n", path.c_str());
  // The script follows edgewise::default_model_path() whenever that file exists.
  if (ewtest::exists(edgewise::default_model_path())) {
    EXPECT_EQ(path, edgewise::default_model_path());
  }

  auto t0 = std::chrono::steady_clock::now();
  GgufFile g = GgufFile::open(path);
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(g.version(), desc.at("version").get<uint32_t>());
  EXPECT_EQ(g.alignment(), desc.at("alignment").get<uint64_t>());
  expect_metadata(g, desc);
  expect_tensor_table(g, desc);

  // Dequantise every tensor (timed), then compare against gguf-py's checksums.
  std::vector<std::vector<float>> out;
  out.reserve(g.tensors().size());
  auto t2 = std::chrono::steady_clock::now();
  for (const GgufTensorInfo& t : g.tensors()) out.push_back(g.dequantize(t));
  auto t3 = std::chrono::steady_clock::now();
  size_t n_total = 0;
  std::map<std::string, size_t> per_type;
  for (size_t i = 0; i < out.size(); ++i) {
    const json& e = desc.at("tensors")[i];
    ASSERT_EQ(out[i].size(), e.at("n").get<size_t>()) << g.tensors()[i].name;
    EXPECT_EQ(std::to_string(bit_checksum(out[i])), e.at("checksum").get<std::string>())
        << "dequantised " << g.tensors()[i].name << " differs from gguf.quants.dequantize";
    n_total += out[i].size();
    per_type[edgewise::ggml_type_name(g.tensors()[i].type)] += 1;
  }
  const double open_s = std::chrono::duration<double>(t1 - t0).count();
  const double deq_s = std::chrono::duration<double>(t3 - t2).count();
  std::printf("  open + parse: %.3f s; dequantise all %zu tensors (%zu values,", open_s,
              out.size(), n_total);
  for (auto& [k, v] : per_type) std::printf(" %s x%zu", k.c_str(), v);
  std::printf("): %.3f s = %.0f M values/s\n", deq_s, n_total / deq_s / 1e6);

  // Stored values (one tensor per type present): bitwise, with the max abs diff printed.
  const Golden vals(golden("model.safetensors"));
  int compared = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string& name = g.tensors()[i].name;
    auto cmp = [&](const std::string& key, const float* got) {
      const std::vector<float> want = vals.f32(key);
      const Diff d = compare_bits(got, want.data(), want.size());
      std::printf("  %-28s %-5s n=%-8zu max|diff|=%g bit mismatches=%zu\n", key.c_str(),
                  edgewise::ggml_type_name(g.tensors()[i].type).c_str(), want.size(), d.max_abs,
                  d.mismatches);
      EXPECT_EQ(d.mismatches, 0u) << key;
      ++compared;
    };
    if (vals.has(name + ".all")) {
      ASSERT_EQ(vals.f32(name + ".all").size(), out[i].size());
      cmp(name + ".all", out[i].data());
    }
    if (vals.has(name + ".head")) {
      cmp(name + ".head", out[i].data());
      const size_t nt = vals.f32(name + ".tail").size();
      cmp(name + ".tail", out[i].data() + out[i].size() - nt);
    }
  }
  EXPECT_GE(compared, 3);
}

// ----------------------------------------------------------------------------- fuzz regressions
// Inputs that crashed fuzz/fuzz_gguf.cpp (kept in fuzz/regressions/fuzz_gguf/, which
// `scripts/fuzz.sh smoke` replays; docs/FUZZING.md).

// A tensor with a zero dimension (F32 [6, 0]) holds no elements and dequantises to nothing;
// ggml_dequantize used to memcpy into the empty output's null pointer (undefined behaviour that
// UBSan reports).
TEST(GgufFuzz, EmptyTensorDequantizesToNothing) {
  static const char kBytes[] =
      "GGUF\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
      "\x01\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00"
      "general.architec"
      "ture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
      "llama\x03\x00\x00\x00\x00\x00\x00\x00t30"
      "\x02\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x94%Q\xcd\xb2\x22\xcd\x0c\x7f\x8f\xdb\x30\x00\x00\x00\x00";
  TempDir tmp;
  const std::string p = (tmp.dir / "empty_tensor.gguf").string();
  write_bytes(p, reinterpret_cast<const uint8_t*>(kBytes), sizeof kBytes - 1);
  GgufFile g = GgufFile::open(p);
  ASSERT_EQ(g.tensors().size(), 1u);
  EXPECT_EQ(g.tensors()[0].shape, (std::vector<int64_t>{6, 0}));
  EXPECT_TRUE(g.dequantize(g.tensors()[0]).empty());
  for (GgmlType t : {GgmlType::F32, GgmlType::Q4_K, GgmlType::BF16})
    edgewise::ggml_dequantize(t, nullptr, nullptr, 0);  // no elements: nothing read or written
}
