// libFuzzer harness: Hugging Face tokenizer.json (Tokenizer::from_tokenizer_json). The input is
// the file's text, read through an in-memory file; a tokenizer that loads encodes and decodes a
// few strings and the input's last 128 bytes (fuzz_tokenizer.h).
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "edgewise/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ew_fuzz::MemFile file("tokenizer.json");
  const std::string& path = file.write(data, size);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ew_fuzz::accepts([&] {
    const edgewise::Tokenizer tok = edgewise::Tokenizer::from_tokenizer_json(path);
    ew_fuzz::exercise_tokenizer(tok, input.substr(size - std::min<size_t>(size, 128)));
  });
  return 0;
}
