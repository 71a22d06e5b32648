// libFuzzer harness: safetensors files (SafetensorsFile::open). The input is the whole file,
// read through an in-memory file; every tensor of an accepted file has its bytes read (they
// must lie inside the mapping, which AddressSanitizer checks) and its shape must match them.
#include <cstdint>
#include <cstdlib>

#include "edgewise/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ew_fuzz::MemFile file("fuzz.safetensors");
  const std::string& path = file.write(data, size);
  ew_fuzz::accepts([&] {
    const edgewise::SafetensorsFile f = edgewise::SafetensorsFile::open(path);
    for (const auto& [name, t] : f.tensors()) {
      uint64_t numel = 1;
      for (int64_t d : t.shape) {
        if (d < 0) std::abort();  // open() must refuse negative dimensions
        numel *= static_cast<uint64_t>(d);
      }
      if (numel * edgewise::st_dtype_size(t.dtype) != t.nbytes) std::abort();
      uint64_t sum = 0;
      for (uint64_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      ew_fuzz::sink(sum);
      if (f.find(name) != &t) std::abort();
    }
    for (const auto& [k, v] : f.metadata()) ew_fuzz::sink(k.size() + v.size());
  });
  return 0;
}
