// libFuzzer harness: dataset files, JSONL and CSV (parse_jsonl, parse_csv), each with and
// without LoadDataOptions::skip_bad, then the answer checks (check_answers) against a small
// byte-level tokenizer built once (every byte a token, a few merges). The input is the file's
// text. An accepted dataset has at least one example, each with a prompt pair and an answer.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "edgewise/dataset.h"
#include "edgewise/tokenizer.h"
#include "fuzz_common.h"
#include "util/unicode.h"

namespace {

// GPT-2's byte-level alphabet as the vocabulary (ids 0..255), " t", "he", " the" merged, and
// <|endoftext|> (256).
const edgewise::Tokenizer& tokenizer() {
  static const edgewise::Tokenizer tok = [] {
    const auto& table = edgewise::unicode::byte_level_table();
    nlohmann::json vocab = nlohmann::json::object();
    for (int b = 0; b < 256; ++b) vocab[table.byte_to_char[b]] = b;
    const std::string sp = table.byte_to_char[' '];
    vocab[sp + "t"] = 256;
    vocab["he"] = 257;
    vocab[sp + "the"] = 258;
    vocab["<|endoftext|>"] = 259;
    static ew_fuzz::MemFile v("dataset_vocab.json"), m("dataset_merges.txt");
    v.write(vocab.dump());
    m.write("#version: 0.2\n" + sp + " t\nh e\n" + sp + "t he\n");
    return edgewise::Tokenizer::from_vocab_merges(v.path(), m.path());
  }();
  return tok;
}

void check(const edgewise::Dataset& ds) {
  if (ds.examples.empty()) std::abort();
  for (size_t i = 0; i < ds.examples.size(); ++i) {
    const edgewise::Example& e = ds.examples[i];
    if (e.clean.empty() || e.corrupted.empty()) std::abort();
    if (e.correct.empty() && e.correct_ids.empty()) std::abort();
    ew_fuzz::sink(ds.where(i).size());
  }
  ew_fuzz::sink(ds.select_split("train").examples.size() + ds.head(2).examples.size());
  for (bool skip : {false, true}) {
    edgewise::Dataset d = ds;
    ew_fuzz::accepts([&] {
      edgewise::check_answers(d, tokenizer(), {skip});
      if (d.examples.empty()) std::abort();
    });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tokenizer();
  for (bool skip : {false, true}) {
    ew_fuzz::accepts([&] { check(edgewise::parse_jsonl("fuzz.jsonl", text, {skip})); });
    ew_fuzz::accepts([&] { check(edgewise::parse_csv("fuzz.csv", text, {skip})); });
  }
  return 0;
}
