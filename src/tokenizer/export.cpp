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
// SentencePiece vocabularies are written as transformers writes Llama / Gemma ones: BPE with
// byte_fallback and fuse_unk (merges ranked from the scores as transformers' generate_merges
// ranks them) or Unigram ([piece, score], unk_id), the normaliser Sequence[Prepend("▁"),
// Replace(" ", "▁")] (Replace alone without a dummy prefix; a loaded Metaspace pre-tokenizer is
// written back as it was), the decoder Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip].
// Not reproducible: two ids with the same piece (HF's vocabulary is a map; possible in a GGUF);
// in decode, HF's lossy UTF-8 (U+FFFD where we return raw bytes) and its ByteLevel decoding of
// added tokens (an added "café" decodes to "caf" + U+FFFD in HF, verbatim here). Encoding is the
// same, except that HF applies a declared NFC where we assume it (non-NFC input differs).
// Not here: tokenizer_config.json / special_tokens_map.json (the model saver), chat templates.
#include <algorithm>
#include <sstream>
#include <string>
#include <tuple>
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

const char* const kSpSpace = "\xE2\x96\x81";  // U+2581

// SentencePiece BPE scores as HF merge ranks, as transformers' generate_merges orders them: every
// split of a piece (normal, user-defined, unused) into two pieces at a character boundary, by the
// piece's score (highest first), then the longer left part, then the longer right part; pieces in
// id order and a piece's splits by (left id, right id) otherwise (a stable sort). HF then merges
// by rank where sentencepiece merges by score, leftmost first: the same but for equal scores.
std::vector<std::pair<int32_t, int32_t>> sp_scored_merges(const Tokenizer::Impl& im) {
  struct M {
    float score;
    int32_t left_chars, right_chars, left, right;
  };
  std::vector<M> all;
  auto chars = [](std::string_view s) {
    int32_t n = 0;
    for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    return n;
  };
  for (int32_t id = 0; id < static_cast<int32_t>(im.pieces.size()); ++id) {
    if (im.types.empty() || (im.types[id] != kSpNormal && im.types[id] != kSpUserDefined && im.types[id] != kSpUnused))
      continue;
    const std::string& p = im.pieces[id];
    const size_t from = all.size();
    for (size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<uint8_t>(p[k]) & 0xC0) == 0x80) continue;  // inside a character
      auto l = im.piece_ids.find(p.substr(0, k));
      if (l == im.piece_ids.end()) continue;
      auto r = im.piece_ids.find(p.substr(k));
      if (r == im.piece_ids.end()) continue;
      all.push_back({im.scores[id], chars(l->first), chars(r->first), l->second, r->second});
    }
    std::sort(all.begin() + static_cast<std::ptrdiff_t>(from), all.end(),
              [](const M& a, const M& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
  }
  std::stable_sort(all.begin(), all.end(), [](const M& a, const M& b) {
    return std::tie(a.score, a.left_chars, a.right_chars) > std::tie(b.score, b.left_chars, b.right_chars);
  });
  std::vector<std::pair<int32_t, int32_t>> out;
  out.reserve(all.size());
  for (const M& m : all) out.emplace_back(m.left, m.right);
  return out;
}

ojson sp_normalizer_json(const Tokenizer::Impl& im) {
  if (im.sp_prefix_unless_space) return nullptr;  // a Metaspace pre-tokenizer does it all
  const ojson replace{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpSpace}};
  if (im.sp_prefix == Tokenizer::Impl::SpPrefix::Never) return replace;
  return ojson{{"type", "Sequence"},
               {"normalizers", ojson::array({ojson{{"type", "Prepend"}, {"prepend", kSpSpace}}, replace})}};
}

ojson sp_pre_tokenizer_json(const Tokenizer::Impl& im) {
  if (!im.sp_prefix_unless_space) return nullptr;
  const char* scheme = im.sp_prefix == Tokenizer::Impl::SpPrefix::Always ? "always"
                       : im.sp_prefix == Tokenizer::Impl::SpPrefix::First ? "first"
                                                                           : "never";
  return ojson{{"type", "Metaspace"}, {"replacement", kSpSpace}, {"prepend_scheme", scheme}, {"split", im.sp_split}};
}

ojson sp_decoder_json(const Tokenizer::Impl& im) {
  ojson list = ojson::array({ojson{{"type", "Replace"}, {"pattern", {{"String", kSpSpace}}}, {"content", " "}},
                             ojson{{"type", "ByteFallback"}}, ojson{{"type", "Fuse"}}});
  if (im.sp_strip) list.push_back(ojson{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return ojson{{"type", "Sequence"}, {"decoders", list}};
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
  const bool sp = im.sp != Impl::Sp::None;
  o << "  \"normalizer\": " << (sp ? sp_normalizer_json(im) : im.nfc ? ojson{{"type", "NFC"}} : ojson(nullptr)).dump()
    << ",\n";
  o << "  \"pre_tokenizer\": " << (sp ? sp_pre_tokenizer_json(im) : pre_tokenizer_json(im.pre)).dump() << ",\n";
  ojson post = nullptr;
  if (im.add_bos && im.bos) {
    const int32_t b = *im.bos;
    const std::string name = b < static_cast<int32_t>(im.pieces.size()) && !im.pieces[b].empty() ? im.pieces[b] : "<bos>";
    q(name, "the BOS token");
    post = post_processor_json(name, b);
  }
  o << "  \"post_processor\": " << post.dump() << ",\n";
  o << "  \"decoder\": "
    << (sp ? sp_decoder_json(im)
           : ojson{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}})
           .dump()
    << ",\n";

  if (im.sp == Impl::Sp::Unigram) {
    // Unigram: [piece, score] in id order (ids 0..n-1 without gaps, as every loader makes them).
    for (size_t k = 0; k < vocab.size(); ++k)
      if (vocab[k].first != static_cast<int32_t>(k))
        fail(im.source,
             "cannot export to tokenizer.json: the Unigram vocabulary has no piece for id " + std::to_string(k));
    o << "  \"model\": {\n    \"type\": \"Unigram\",\n    \"unk_id\": "
      << (im.unk_id ? std::to_string(*im.unk_id) : std::string("null")) << ",\n    \"vocab\": [";
    for (size_t k = 0; k < vocab.size(); ++k) {
      const double score = im.sp_hf ? im.scores_hf[vocab[k].first] : static_cast<double>(im.scores[vocab[k].first]);
      o << (k ? ",\n      " : "\n      ") << "[" << q(vocab[k].second, "the piece", vocab[k].first) << ", "
        << ojson(score).dump() << "]";
    }
    o << (vocab.empty() ? "],\n" : "\n    ],\n");
    o << "    \"byte_fallback\": " << (im.byte_fallback ? "true" : "false") << "\n  }\n}\n";
    return o.str();
  }

  o << "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ";
  if (im.unk_id && *im.unk_id < static_cast<int32_t>(im.pieces.size()))
    o << q(im.pieces[*im.unk_id], "the unknown token");
  else
    o << "null";
  o << ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
       "    \"fuse_unk\": " << (sp && im.fuse_unk ? "true" : "false") << ",\n    \"byte_fallback\": "
    << (sp && im.byte_fallback ? "true" : "false") << ",\n    \"ignore_merges\": "
    << (im.ignore_merges ? "true" : "false") << ",\n    \"vocab\": {";
  for (size_t k = 0; k < vocab.size(); ++k)
    o << (k ? ",\n      " : "\n      ") << q(vocab[k].second, "the piece", vocab[k].first)
      << ": " << vocab[k].first;
  o << (vocab.empty() ? "},\n" : "\n    },\n");

  // Merges in rank order. "left right" strings (read by every tokenizers version) unless a
  // piece has a space, which only the [left, right] form (tokenizers >= 0.20) can carry.
  std::vector<std::pair<int32_t, uint64_t>> merges;
  if (sp && !im.sp_hf) {
    int32_t rank = 0;
    for (const auto& [l, r] : sp_scored_merges(im))
      merges.emplace_back(rank++, (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r));
  } else {
    merges.reserve(im.merges.size());
    for (const auto& [key, rank_id] : im.merges) merges.emplace_back(rank_id.first, key);
    std::sort(merges.begin(), merges.end());
  }
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
