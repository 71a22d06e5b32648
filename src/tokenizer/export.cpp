// Tokenizer -> Hugging Face tokenizer.json (Tokenizer::to_hf_json), whatever the tokenizer was
// loaded from (tokenizer.json, vocab.json + merges.txt, GGUF metadata), so that a model saved as
// an HF directory carries a tokenizer that `tokenizers` loads into the same ids. Written as HF's
// own builders write it (tests/reference/tokenizer_golden.py):
//   model          BPE: vocabulary (id order), merges in rank order, ignore_merges, unk_token
//   pre_tokenizer  Gpt2   ByteLevel(use_regex=true)
//                  Llama3 / Qwen2  Sequence[Split(pattern, Isolated), ByteLevel(use_regex=false)]
//                  SmolLM Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]
//   normalizer     NFC when the loaded tokenizer.json declared it (we assume NFC input), else null
//   decoder        ByteLevel
//   added_tokens   with special / lstrip / rstrip / single_word / normalized
//   post_processor TemplateProcessing "<bos> $A" when add_bos() is set, else null
// HF gives an added token that is not in the model vocabulary the next free id (vocabulary size,
// then counting up) whatever id the file names; when that would not give our ids (gaps), the
// added tokens' contents are put into the model vocabulary at their ids, which HF then keeps.
// Not reproducible: two ids with the same piece (HF's vocabulary is a map; possible in a GGUF);
// in decode, HF's lossy UTF-8 (U+FFFD where we return raw bytes) and its ByteLevel decoding of
// added tokens (an added "café" decodes to "caf" + U+FFFD in HF, verbatim here). Encoding is the
// same, except that HF applies a declared NFC where we assume it (non-NFC input differs).
// Not here: tokenizer_config.json / special_tokens_map.json (the model saver), chat templates.
#include <algorithm>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/tokenizer.h"
#include "tokenizer_impl.h"

namespace edgewise {

using ojson = nlohmann::ordered_json;

namespace {

ojson byte_level(bool use_regex) {
  return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

ojson pre_tokenizer_json(PreSplit p) {
  switch (p) {
    case PreSplit::Gpt2:
      return byte_level(true);
    case PreSplit::Llama3:
    case PreSplit::Qwen2: {
      const ojson split{{"type", "Split"},
                        {"pattern", {{"Regex", PreSplitter::hf_pattern(p)}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
      return ojson{{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level(false)})}};
    }
    case PreSplit::SmolLM: {
      const ojson digits{{"type", "Digits"}, {"individual_digits", true}};
      return ojson{{"type", "Sequence"}, {"pretokenizers", ojson::array({digits, byte_level(true)})}};
    }
  }
  return nullptr;
}

ojson post_processor_json(const std::string& bos_name, int32_t bos) {
  auto special = [&](int type_id) { return ojson{{"SpecialToken", {{"id", bos_name}, {"type_id", type_id}}}}; };
  auto seq = [](const char* id, int type_id) { return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  return ojson{{"type", "TemplateProcessing"},
               {"single", ojson::array({special(0), seq("A", 0)})},
               {"pair", ojson::array({special(0), seq("A", 0), special(1), seq("B", 1)})},  // as Llama-3
               {"special_tokens", {{bos_name, {{"id", bos_name}, {"ids", {bos}}, {"tokens", {bos_name}}}}}}};
}

}  // namespace

std::string Tokenizer::to_hf_json() const {
  const Impl& im = *impl_;
  if (im.words) fail(im.source, "a word-level vocabulary (Tracr) has no tokenizer.json form here");
  // JSON strings must be UTF-8; a piece that is not (possible in a GGUF) cannot be written.
  auto q = [&](const std::string& s, const char* what, int64_t id = -1) {
    try {
      return ojson(s).dump();
    } catch (const ojson::exception&) {
      fail(im.source, std::string("cannot export to tokenizer.json: ") + what +
                          (id >= 0 ? " of id " + std::to_string(id) : std::string()) + " is not valid UTF-8");
    }
  };

  // Model vocabulary in id order (ties by piece, for a deterministic file).
  std::vector<std::pair<int32_t, std::string>> vocab;
  vocab.reserve(im.piece_ids.size() + im.added.size());
  for (const auto& [p, id] : im.piece_ids) vocab.emplace_back(id, p);

  // Added tokens in id order, as HF writes and reads them.
  std::vector<size_t> order(im.added.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return im.added[a].id < im.added[b].id; });

  // Replay HF's AddedVocabulary::add_tokens: a content found in the added tokens so far or in the
  // model vocabulary keeps that id; any other gets the model's vocabulary size, or the largest
  // id so far + 1 once that is at least the vocabulary size.
  const auto V = static_cast<int64_t>(im.piece_ids.size());
  std::unordered_map<std::string, int64_t> hf_ids;
  int64_t max_id = -1;
  bool ids_kept = true;
  for (size_t i : order) {
    const AddedToken& t = im.added[i];
    int64_t id;
    if (auto it = hf_ids.find(t.content); it != hf_ids.end()) {
      id = it->second;
    } else if (auto jt = im.piece_ids.find(t.content); jt != im.piece_ids.end()) {
      id = jt->second;
    } else {
      id = max_id < 0 ? V : (max_id >= V || V == 0 ? max_id + 1 : V);
    }
    hf_ids.emplace(t.content, id);
    max_id = std::max(max_id, id);
    if (id != t.id) ids_kept = false;
  }
  if (!ids_kept)
    for (const AddedToken& t : im.added)
      if (!im.piece_ids.count(t.content)) vocab.emplace_back(t.id, t.content);
  std::sort(vocab.begin(), vocab.end());

  std::ostringstream o;
  o << "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  for (size_t k = 0; k < order.size(); ++k) {
    const AddedToken& t = im.added[order[k]];
    o << (k ? ",\n    " : "\n    ") << "{\"id\": " << t.id << ", \"content\": " << q(t.content, "an added token")
      << ", \"single_word\": " << (t.single_word ? "true" : "false")
      << ", \"lstrip\": " << (t.lstrip ? "true" : "false") << ", \"rstrip\": " << (t.rstrip ? "true" : "false")
      << ", \"normalized\": " << (im.added_normalized[order[k]] ? "true" : "false")
      << ", \"special\": " << (t.special ? "true" : "false") << "}";
  }
  o << (order.empty() ? "],\n" : "\n  ],\n");
  o << "  \"normalizer\": " << (im.nfc ? ojson{{"type", "NFC"}} : ojson(nullptr)).dump() << ",\n";
  o << "  \"pre_tokenizer\": " << pre_tokenizer_json(im.pre).dump() << ",\n";
  ojson post = nullptr;
  if (im.add_bos && im.bos) {
    const int32_t b = *im.bos;
    const std::string name = b < static_cast<int32_t>(im.pieces.size()) && !im.pieces[b].empty() ? im.pieces[b] : "<bos>";
    q(name, "the BOS token");
    post = post_processor_json(name, b);
  }
  o << "  \"post_processor\": " << post.dump() << ",\n";
  o << "  \"decoder\": " << ojson{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                                  {"use_regex", true}}.dump()
    << ",\n";

  o << "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ";
  if (im.unk_id && *im.unk_id < static_cast<int32_t>(im.pieces.size()))
    o << q(im.pieces[*im.unk_id], "the unknown token");
  else
    o << "null";
  o << ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
       "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": "
    << (im.ignore_merges ? "true" : "false") << ",\n    \"vocab\": {";
  for (size_t k = 0; k < vocab.size(); ++k)
    o << (k ? ",\n      " : "\n      ") << q(vocab[k].second, "the piece", vocab[k].first)
      << ": " << vocab[k].first;
  o << (vocab.empty() ? "},\n" : "\n    },\n");

  // Merges in rank order. "left right" strings (read by every tokenizers version) unless a
  // piece has a space, which only the [left, right] form (tokenizers >= 0.20) can carry.
  std::vector<std::pair<int32_t, uint64_t>> merges;
  merges.reserve(im.merges.size());
  for (const auto& [key, rank_id] : im.merges) merges.emplace_back(rank_id.first, key);
  std::sort(merges.begin(), merges.end());
  auto left = [&](uint64_t key) -> const std::string& { return im.pieces[static_cast<int32_t>(key >> 32)]; };
  auto right = [&](uint64_t key) -> const std::string& { return im.pieces[static_cast<int32_t>(key & 0xFFFFFFFFu)]; };
  bool pairs = false;
  for (const auto& [rank, key] : merges)
    if (left(key).find(' ') != std::string::npos || right(key).find(' ') != std::string::npos) pairs = true;
  o << "    \"merges\": [";
  for (size_t k = 0; k < merges.size(); ++k) {
    const uint64_t key = merges[k].second;
    o << (k ? ",\n      " : "\n      ");
    if (pairs)
      o << "[" << q(left(key), "a merge piece") << ", " << q(right(key), "a merge piece") << "]";
    else
      o << q(left(key) + " " + right(key), "a merge");
  }
  o << (merges.empty() ? "]\n" : "\n    ]\n");
  o << "  }\n}\n";
  return o.str();
}

}  // namespace edgewise
