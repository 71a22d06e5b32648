// libFuzzer harness: GGUF files (GgufFile::open), their metadata through every typed getter,
// dequantisation of every tensor whose type is supported (up to 2^20 elements per input, so
// one exec stays fast), and the byte-level BPE vocabulary in tokenizer.ggml.* when the file
// names one (Tokenizer::from_gguf). The input is the whole file, read through an in-memory file.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "edgewise/gguf.h"
#include "edgewise/tokenizer.h"
#include "fuzz_common.h"

namespace {

constexpr int64_t kMaxDequantElems = int64_t{1} << 20;

void read_metadata(const edgewise::GgufFile& f) {
  using ew_fuzz::accepts;
  for (const auto& kv : f.metadata()) {
    const std::string& key = kv.first;
    if (!f.has(key)) std::abort();
    // Each getter either returns the value or says the type is wrong: never anything else.
    accepts([&] { ew_fuzz::sink(f.get_string(key).size()); });
    accepts([&] { ew_fuzz::sink(static_cast<uint64_t>(f.get_int(key))); });
    accepts([&] { ew_fuzz::sink(f.get_float(key) != 0); });
    accepts([&] { ew_fuzz::sink(f.get_bool(key)); });
    accepts([&] { ew_fuzz::sink(f.get_string_array(key).size()); });
    accepts([&] { ew_fuzz::sink(f.get_float_array(key).size()); });
    accepts([&] { ew_fuzz::sink(f.get_int_array(key).size()); });
  }
  accepts([&] { f.get_string("fuzz.no.such.key"); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ew_fuzz::MemFile file("fuzz.gguf");
  const std::string& path = file.write(data, size);
  ew_fuzz::accepts([&] {
    const edgewise::GgufFile f = edgewise::GgufFile::open(path);
    read_metadata(f);
    int64_t budget = kMaxDequantElems;
    for (const edgewise::GgufTensorInfo& t : f.tensors()) {
      if (f.find_tensor(t.name) == nullptr) std::abort();
      if (!edgewise::ggml_type_supported(t.type)) {
        ew_fuzz::accepts([&] { f.dequantize(t); });  // must be refused by name, not crash
        continue;
      }
      int64_t n = 1;
      bool small = true;
      for (int64_t ne : t.shape) {
        if (ne < 0 || (ne > 0 && n > budget / ne)) small = false;
        else n *= ne;
      }
      if (!small || n > budget) continue;
      budget -= n;
      ew_fuzz::accepts([&] {
        const std::vector<float> out = f.dequantize(t);
        if (static_cast<int64_t>(out.size()) != n) std::abort();
        uint64_t finite = 0;
        for (float x : out) finite += x == x;
        ew_fuzz::sink(finite);
      });
    }
    if (f.has("tokenizer.ggml.model")) {
      ew_fuzz::accepts([&] {
        const edgewise::Tokenizer tok = edgewise::Tokenizer::from_gguf(f);
        const std::vector<int32_t> ids = tok.encode("Hello world, 123 <|endoftext|>");
        ew_fuzz::sink(tok.decode(ids).size());
      });
    }
  });
  return 0;
}
