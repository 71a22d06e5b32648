// What the tokenizer harnesses do with a tokenizer that loaded: encode fixed strings (ASCII,
// digits, Unicode, invalid UTF-8, special-token look-alikes) and a slice of the fuzz input, then
// decode the ids, look every produced id up, and export the vocabulary when it is small.
#pragma once
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "edgewise/tokenizer.h"
#include "fuzz_common.h"

namespace ew_fuzz {

inline void exercise_tokenizer(const edgewise::Tokenizer& tok, std::string_view input_slice) {
  static const char* const kTexts[] = {
      "Hello world! It's 2024: 1234567 apples.",
      "  leading spaces\n\ttabs\r\nand newlines  ",
      "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xd9\xa3\xd9\xa4",
      "bad utf-8: \xff\xfe \xc3 \xe4\xb8 end",
      "<|endoftext|><s></s><|im_start|>user<|im_end|>",
      "",
  };
  std::vector<std::string_view> texts(std::begin(kTexts), std::end(kTexts));
  texts.push_back(input_slice);
  const int32_t V = tok.vocab_size();
  for (std::string_view text : texts) {
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) {
      if (id < 0 || id >= V) std::abort();  // encode only produces ids of the vocabulary
      sink(tok.piece(id).size());
    }
    sink(tok.decode(ids).size());
    accepts([&] { sink(tok.encode_for_model(text).size()); });
  }
  sink(tok.decode_shown({-1, 0, V, V + 7}).size());
  sink(tok.token_label(V).size());
  accepts([&] { tok.decode({V}); });  // out of range: an Error
  sink(tok.find("<|endoftext|>").has_value());
  if (V <= 4096) accepts([&] { sink(tok.to_hf_json().size()); });
}

}  // namespace ew_fuzz
