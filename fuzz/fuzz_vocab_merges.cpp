// libFuzzer harness: GPT-2 style vocab.json + merges.txt (Tokenizer::from_vocab_merges). The
// input holds both files, vocab.json first, split at the first line "#----merges----#"
// (fuzz/fuzz_vocab_merges.dict has it); without that line all of it is vocab.json and merges.txt is
// empty. A tokenizer that loads encodes and decodes a few strings (fuzz_tokenizer.h).
#include <cstdint>
#include <string_view>

#include "edgewise/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ew_fuzz::MemFile vocab("vocab.json"), merges("merges.txt");
  static constexpr std::string_view kSep = "\n#----merges----#\n";
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t cut = input.find(kSep);
  const std::string_view v = input.substr(0, cut);
  const std::string_view m = cut == std::string_view::npos ? std::string_view() : input.substr(cut + kSep.size());
  vocab.write(v);
  merges.write(m);
  ew_fuzz::accepts([&] {
    const edgewise::Tokenizer tok = edgewise::Tokenizer::from_vocab_merges(vocab.path(), merges.path());
    ew_fuzz::exercise_tokenizer(tok, m.substr(0, 128));
  });
  return 0;
}
