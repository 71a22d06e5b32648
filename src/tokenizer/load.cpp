// Loading byte-level BPE vocabularies: HF tokenizer.json, vocab.json + merges.txt, and GGUF
// metadata (tokenizer.ggml.*). Each loader fills a Tokenizer::Impl and validates it: every
// merge must name two known pieces whose concatenation is a known piece, ids must be
// non-negative, and the pre-tokenizer must be one of the supported variants; anything else is
// an Error naming the file.
// SentencePiece vocabularies too: GGUF tokenizer.ggml.model "llama" (BPE) / "t5" (unigram) and
// tokenizer.json BPE with byte_fallback / Unigram, with the Llama / Gemma normaliser, Metaspace
// and decoder; their pieces, scores and types are validated the same way (docs/TOKENIZERS.md).
// Not here: normalisers other than none / NFC (NFC is accepted and input is assumed to be NFC
// already) / SentencePiece's space handling, SentencePiece normalisation rules (nmt_nfkc), WordPiece.
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "edgewise/tokenizer.h"
#include "tokenizer_impl.h"

namespace edgewise {

using json = nlohmann::json;

namespace {

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open ") + what + " (missing or unreadable)");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, std::string("cannot read ") + what);
  return ss.str();
}

json parse_json(const std::string& path, const char* what) {
  const std::string text = read_text(path, what);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON in ") + what + ": " + e.what());
  }
}

// j[key] as a bool / a string, `def` when absent or null; another type is an Error naming
// `where` and the key (nlohmann's value() would throw its own type_error instead).
bool opt_bool(const json& j, const char* key, bool def, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) fail(where, std::string("\"") + key + "\" must be true or false, found " + j[key].dump());
  return j[key].get<bool>();
}
std::string opt_string(const json& j, const char* key, const std::string& def, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_string()) fail(where, std::string("\"") + key + "\" must be a string, found " + j[key].dump());
  return j[key].get<std::string>();
}

// Token ids above this are refused: no byte-level BPE vocabulary comes near (the largest have
// ~2^18 entries), and the id tables are sized by the largest id.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

// A token id from JSON: an integer in [0, kMaxTokenId]; `what` names it in the error.
int32_t token_id_of(const json& v, const std::string& where, const std::string& what) {
  if (!v.is_number_integer()) fail(where, what + " is not an integer id: " + v.dump());
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId))
    fail(where, what + " has the id " + v.dump() + ", expected 0.." + std::to_string(kMaxTokenId));
  return static_cast<int32_t>(v.get<int64_t>());
}

std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, "expected an object with a string \"type\", found " + j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

// Fills pieces / piece_ids from (piece, id) pairs.
void set_vocab(Tokenizer::Impl& im, const std::vector<std::pair<std::string, int64_t>>& vocab,
               const std::string& where) {
  int64_t max_id = -1;
  for (const auto& [p, id] : vocab) {
    if (id < 0 || id > kMaxTokenId)
      fail(where, "vocabulary entry '" + p + "' has an invalid id " + std::to_string(id) + " (expected 0.." +
                      std::to_string(kMaxTokenId) + ")");
    max_id = std::max(max_id, id);
  }
  im.pieces.assign(max_id + 1, std::string());
  im.piece_ids.reserve(vocab.size());
  for (const auto& [p, id] : vocab) {
    im.piece_ids.emplace(p, static_cast<int32_t>(id));
    if (im.pieces[id].empty()) im.pieces[id] = p;
  }
}

// Adds merge number `rank`; `where` names the file and entry in errors.
void add_merge(Tokenizer::Impl& im, const std::string& a, const std::string& b, int32_t rank,
               const std::string& where) {
  auto ia = im.piece_ids.find(a), ib = im.piece_ids.find(b);
  const std::string merge = "merge '" + a + " " + b + "'";
  if (ia == im.piece_ids.end()) fail(where, merge + " uses '" + a + "', which is not in the vocabulary");
  if (ib == im.piece_ids.end()) fail(where, merge + " uses '" + b + "', which is not in the vocabulary");
  auto merged = im.piece_ids.find(a + b);
  if (merged == im.piece_ids.end())
    fail(where, merge + " produces '" + a + b + "', which is not in the vocabulary");
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
                       static_cast<uint32_t>(ib->second);
  im.merges[key] = {rank, merged->second};  // a repeated merge keeps its last rank, as in HF
}

// "a b" -> (a, b), splitting at the first space after the first character (as llama.cpp).
bool split_merge(const std::string& line, std::string& a, std::string& b) {
  const size_t sp = line.find(' ', 1);
  if (sp == std::string::npos) return false;
  a = line.substr(0, sp);
  b = line.substr(sp + 1);
  return !b.empty() && b.find(' ') == std::string::npos;
}

// The GPT-2 convention for vocabularies without configuration: <|endoftext|> is special and is
// both BOS and EOS; nothing is prepended.
void gpt2_defaults(Tokenizer::Impl& im) {
  if (auto it = im.piece_ids.find("<|endoftext|>"); it != im.piece_ids.end()) {
    im.add_token({it->second, "<|endoftext|>", true, false, false, false}, false);
    im.bos = im.eos = it->second;
  }
}

// ------------------------------------------------------------ tokenizer.json pre_tokenizer

bool is_byte_level(const json& j, const std::string& where, bool use_regex) {
  if (!j.is_object() || type_of(j, where) != "ByteLevel") return false;
  if (opt_bool(j, "add_prefix_space", false, where))
    fail(where, "ByteLevel pre_tokenizer with add_prefix_space = true is not supported");
  return opt_bool(j, "use_regex", true, where) == use_regex;
}

PreSplit detect_pre_split(const json& pt, const std::string& path) {
  const std::string where = path + ": pre_tokenizer";
  const std::string supported =
      "supported: ByteLevel (GPT-2); Sequence[Split(Llama-3 or Qwen2 regex), ByteLevel(use_regex=false)]; "
      "Sequence[Digits(individual_digits=true), ByteLevel] (SmolLM)";
  auto unsupported = [&](const std::string& why) -> PreSplit {
    fail(where, why + " (" + supported + ")");
  };
  if (pt.is_null()) return unsupported("none given; byte-level BPE needs a ByteLevel pre-tokenizer");
  const std::string type = type_of(pt, where);
  if (type == "ByteLevel") {
    if (is_byte_level(pt, where, true)) return PreSplit::Gpt2;
    return unsupported("ByteLevel with use_regex = false and no Split before it");
  }
  if (type != "Sequence" || !pt.contains("pretokenizers") || !pt["pretokenizers"].is_array())
    return unsupported("unsupported type '" + type + "'");
  const json& seq = pt["pretokenizers"];
  if (seq.size() == 1) return detect_pre_split(seq[0], path);
  if (seq.size() != 2) return unsupported("a Sequence of " + std::to_string(seq.size()) + " pre-tokenizers");
  const std::string t0 = type_of(seq[0], where);
  if (t0 == "Digits") {
    if (!opt_bool(seq[0], "individual_digits", false, where))
      return unsupported("Digits with individual_digits = false");
    if (!is_byte_level(seq[1], where, true))
      return unsupported("Digits not followed by ByteLevel(use_regex=true)");
    return PreSplit::SmolLM;
  }
  if (t0 == "Split") {
    const json& s = seq[0];
    if (!is_byte_level(seq[1], where, false))
      return unsupported("Split not followed by ByteLevel(use_regex=false)");
    const std::string behavior = opt_string(s, "behavior", "", where);
    if (behavior != "Isolated" || opt_bool(s, "invert", false, where))
      return unsupported("Split with behavior '" + behavior +
                         "' / invert (expected Isolated, invert = false)");
    std::string re;
    if (s.contains("pattern") && s["pattern"].is_object() && s["pattern"].contains("Regex") &&
        s["pattern"]["Regex"].is_string())
      re = s["pattern"]["Regex"].get<std::string>();
    for (PreSplit p : {PreSplit::Llama3, PreSplit::Qwen2, PreSplit::Gpt2})
      if (re == PreSplitter::hf_pattern(p)) return p;
    return unsupported("Split regex " + json(re).dump() + " is not one of the known patterns");
  }
  return unsupported("a Sequence starting with '" + t0 + "'");
}

// BOS from a TemplateProcessing post-processor whose single-sequence template starts with a
// special token (e.g. "<|begin_of_text|> $A"). Special tokens after $A (none in the supported
// models) are not reproduced by encode_for_model().
void detect_bos(Tokenizer::Impl& im, const json& pp, const std::string& path) {
  if (!pp.is_object()) return;
  const std::string where = path + ": post_processor";
  const std::string type = type_of(pp, where);
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const json& p : pp["processors"]) detect_bos(im, p, path);
    return;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array()) return;
  const json& single = pp["single"];
  if (single.empty() || !single[0].contains("SpecialToken")) return;
  const json& special = single[0]["SpecialToken"];
  if (!special.is_object()) fail(where, "TemplateProcessing's SpecialToken is not an object: " + special.dump());
  const std::string name = opt_string(special, "id", "", where);
  if (!pp.contains("special_tokens") || !pp["special_tokens"].contains(name))
    fail(where, "TemplateProcessing names special token '" + name + "' but does not define it");
  const json& def = pp["special_tokens"][name];
  const json* ids = def.is_object() && def.contains("ids") ? &def["ids"] : nullptr;
  if (!ids || !ids->is_array() || ids->size() != 1 || !(*ids)[0].is_number_integer())
    fail(where, "special token '" + name + "' should have exactly one id");
  im.bos = token_id_of((*ids)[0], where, "special token '" + name + "'");
  im.add_bos = true;
}

// ------------------------------------------------------------ SentencePiece (tokenizer.json)

constexpr const char* kSpSpace = "\xE2\x96\x81";  // U+2581

// A normalizer's or decoder's steps: the members of a Sequence (under `list_key`), or the node itself.
std::vector<json> sequence_items(const json& node, const char* list_key, const std::string& where) {
  if (type_of(node, where) == "Sequence" && node.contains(list_key) && node[list_key].is_array())
    return node[list_key].get<std::vector<json>>();
  return {node};
}

// Whether a Replace / Split step's pattern is the literal string `text`.
bool pattern_is(const json& x, const char* text) {
  return x.contains("pattern") && x["pattern"].is_object() && x["pattern"].contains("String") &&
         x["pattern"]["String"] == text;
}

// The parts of a Llama / Gemma tokenizer.json around a SentencePiece model: normalizer
// Sequence[Prepend("▁"), Replace(" ", "▁")] (or one of them, or none), pre_tokenizer Metaspace or
// none, decoder Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)] or Metaspace.
void sp_json_pipeline(Tokenizer::Impl& im, const json& j, const std::string& path) {
  const std::string supported =
      " (supported with SentencePiece models: normalizer Prepend(\"\u2581\") and/or Replace(\" \", \"\u2581\") "
      "or none; pre_tokenizer Metaspace, Split(\" \") after that Replace, or none; decoder Replace / ByteFallback / "
      "Fuse / Strip or Metaspace)";
  bool prepend = false, replace = false, metaspace = false;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const std::string where = path + ": normalizer";
    for (const json& x : sequence_items(j["normalizer"], "normalizers", where)) {
      const std::string t = type_of(x, where);
      if (t == "Prepend" && opt_string(x, "prepend", "", where) == kSpSpace) {
        prepend = true;
      } else if (t == "Replace" && pattern_is(x, " ") && opt_string(x, "content", "", where) == kSpSpace) {
        replace = true;
      } else {
        fail(where, "'" + t + "' " + x.dump().substr(0, 120) + " is not supported" + supported);
      }
    }
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    const std::string where = path + ": pre_tokenizer";
    const json& pt = j["pre_tokenizer"];
    const std::string type = type_of(pt, where);
    // transformers' Gemma conversion: Split(" ") after the Replace(" ", "▁") normaliser, which has
    // left no space to split at (added tokens, matched before, are not split either).
    const bool split_space = type == "Split" && pattern_is(pt, " ") && !opt_bool(pt, "invert", false, where);
    if (split_space && !replace)
      fail(where, "Split(\" \") is supported only after a Replace(\" \", \"\u2581\") normalizer" + supported);
    if (!split_space && type != "Metaspace") fail(where, "type '" + type + "' is not supported" + supported);
    if (type == "Metaspace") {
      if (opt_string(pt, "replacement", kSpSpace, where) != kSpSpace)
        fail(where, "Metaspace replacement must be U+2581, found " + pt["replacement"].dump());
      std::string scheme = opt_string(pt, "prepend_scheme", "", where);
      if (scheme.empty()) scheme = opt_bool(pt, "add_prefix_space", true, where) ? "always" : "never";
      if (scheme == "always") {
        im.sp_prefix = Tokenizer::Impl::SpPrefix::Always;
      } else if (scheme == "first") {
        im.sp_prefix = Tokenizer::Impl::SpPrefix::First;
      } else if (scheme == "never") {
        im.sp_prefix = Tokenizer::Impl::SpPrefix::Never;
      } else {
        fail(where, "Metaspace prepend_scheme '" + scheme + "' is not one of always, first, never");
      }
      im.sp_prefix_unless_space = true;
      im.sp_split = opt_bool(pt, "split", true, where);
      metaspace = true;
    }
  }
  if (!replace && !metaspace)
    fail(path, "a SentencePiece model needs spaces turned into U+2581: a Replace(\" \", \"\u2581\") normalizer or a "
               "Metaspace pre-tokenizer" + supported);
  if (prepend) {  // the normaliser's prefix is unconditional and comes first
    im.sp_prefix = Tokenizer::Impl::SpPrefix::Always;
    im.sp_prefix_unless_space = false;
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const std::string where = path + ": decoder";
    for (const json& x : sequence_items(j["decoder"], "decoders", where)) {
      const std::string t = type_of(x, where);
      if (t == "Strip") {
        if (opt_string(x, "content", " ", where) != " " || !x.contains("start") || !x["start"].is_number_integer() ||
            x["start"].get<int64_t>() > 1 || (x.contains("stop") && x["stop"] != 0))
          fail(where, "only Strip(\" \", 1, 0) is supported, found " + x.dump().substr(0, 120));
        im.sp_strip = x["start"].get<int64_t>() == 1;
      } else if (t == "Metaspace") {
        im.sp_strip = opt_string(x, "prepend_scheme", "always", where) != "never" &&
                      opt_bool(x, "add_prefix_space", true, where);
      } else if (t != "Replace" && t != "ByteFallback" && t != "Fuse") {
        fail(where, "'" + t + "' is not supported" + supported);
      }
    }
  }
}

// ------------------------------------------------------------ SentencePiece (GGUF)

// tokenizer.ggml.model "llama" (llama.cpp's SPM: SentencePiece BPE) or "t5" (its UGM: unigram).
// Pieces, scores and types are required; types are sentencepiece's (1 normal, 2 unknown,
// 3 control, 4 user-defined, 5 unused, 6 byte). Control tokens are special added tokens and
// user-defined ones non-special added tokens, both matched in the raw text as llama.cpp does
// (its converter writes user-defined pieces with spaces, not U+2581, for that).
std::unique_ptr<Tokenizer::Impl> sp_from_gguf(const GgufFile& f, const std::string& model) {
  const std::string& path = f.path();
  auto im = std::make_unique<Tokenizer::Impl>();
  im->source = path + " (GGUF tokenizer.ggml.*, SentencePiece " + (model == "llama" ? "BPE" : "unigram") + ")";
  im->sp = model == "llama" ? Tokenizer::Impl::Sp::Bpe : Tokenizer::Impl::Sp::Unigram;
  const std::string what = "tokenizer.ggml.model = \"" + model + "\" (SentencePiece) needs ";
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"})
    if (!f.has(key)) fail(path, what + key + " (one entry per token); it is missing");
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  const std::vector<double> scores = f.get_float_array("tokenizer.ggml.scores");
  const std::vector<int64_t> types = f.get_int_array("tokenizer.ggml.token_type");
  const size_t n = tokens.size();
  if (n == 0) fail(path, "tokenizer.ggml.tokens is empty");
  if (static_cast<int64_t>(n) > kMaxTokenId + 1)
    fail(path, "tokenizer.ggml.tokens has " + std::to_string(n) + " entries, more than the supported " +
                   std::to_string(kMaxTokenId + 1));
  if (scores.size() != n)
    fail(path, "tokenizer.ggml.scores has " + std::to_string(scores.size()) + " entries, expected " + std::to_string(n) +
                   " (one per token)");
  if (types.size() != n)
    fail(path, "tokenizer.ggml.token_type has " + std::to_string(types.size()) + " entries, expected " +
                   std::to_string(n) + " (one per token)");
  im->scores.resize(n);
  im->types.resize(n);
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(n);
  std::unordered_map<std::string, size_t> seen;
  int n_bytes = 0;
  std::optional<int32_t> unk_typed;
  for (size_t i = 0; i < n; ++i) {
    const std::string at = "tokenizer.ggml.tokens[" + std::to_string(i) + "]";
    if (tokens[i].empty()) fail(path, at + " is empty (a SentencePiece piece must not be)");
    if (types[i] < 1 || types[i] > 6)
      fail(path, "tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(types[i]) +
                     " is not a SentencePiece type (expected 1 normal, 2 unknown, 3 control, 4 user-defined, "
                     "5 unused, 6 byte)");
    if (!std::isfinite(scores[i]))
      fail(path, "tokenizer.ggml.scores[" + std::to_string(i) + "] is not a finite number");
    if (auto [it, fresh] = seen.emplace(tokens[i], i); !fresh)
      fail(path, at + " '" + tokens[i] + "' repeats token " + std::to_string(it->second) +
                     " (each piece must appear once)");
    im->scores[i] = static_cast<float>(scores[i]);
    im->types[i] = static_cast<uint8_t>(types[i]);
    if (types[i] == kSpByte) {
      const std::string& p = tokens[i];
      auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
      if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || !hex(p[3]) || !hex(p[4]) || p[5] != '>')
        fail(path, at + " '" + p + "' has the byte type (6) but is not of the form <0xAB>");
      ++n_bytes;
    }
    if (types[i] == kSpUnknown && !unk_typed) unk_typed = static_cast<int32_t>(i);
    vocab.emplace_back(tokens[i], static_cast<int64_t>(i));
  }
  if (n_bytes != 0 && n_bytes != 256)
    fail(path, "the vocabulary has " + std::to_string(n_bytes) +
                   " byte tokens (type 6); byte fallback needs all 256, <0x00> to <0xFF>");
  im->byte_fallback = n_bytes == 256;
  set_vocab(*im, vocab, path);

  auto token_id = [&](const char* key) -> std::optional<int32_t> {
    if (!f.has(key)) return std::nullopt;
    const int64_t id = f.get_int(key);
    if (id < 0 || id >= static_cast<int64_t>(n))
      fail(path, std::string(key) + " = " + std::to_string(id) + " is outside the vocabulary of " +
                     std::to_string(n) + " tokens");
    return static_cast<int32_t>(id);
  };
  im->unk_id = token_id("tokenizer.ggml.unknown_token_id");
  if (!im->unk_id) im->unk_id = unk_typed;
  if (!im->unk_id && !im->byte_fallback)
    fail(path, what + "an unknown token (tokenizer.ggml.unknown_token_id or a token of type 2) or the 256 byte tokens");
  im->bos = token_id("tokenizer.ggml.bos_token_id");
  im->eos = token_id("tokenizer.ggml.eos_token_id");
  im->add_bos = f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
  // llama.cpp's default when the key is absent: a dummy prefix (as sentencepiece's add_dummy_prefix).
  const bool prefix = !f.has("tokenizer.ggml.add_space_prefix") || f.get_bool("tokenizer.ggml.add_space_prefix");
  im->sp_prefix = prefix ? Tokenizer::Impl::SpPrefix::Always : Tokenizer::Impl::SpPrefix::Never;
  im->sp_strip = prefix;
  if (f.has("tokenizer.ggml.remove_extra_whitespaces") && f.get_bool("tokenizer.ggml.remove_extra_whitespaces"))
    fail(path, "tokenizer.ggml.remove_extra_whitespaces = true is not supported (SentencePiece with identity "
               "normalisation only)");
  if (f.has("tokenizer.ggml.precompiled_charsmap")) {
    bool empty = true;
    try {
      empty = f.get_int_array("tokenizer.ggml.precompiled_charsmap").empty();
    } catch (const Error&) {
      empty = false;
    }
    if (!empty)
      fail(path, "tokenizer.ggml.precompiled_charsmap is not empty: SentencePiece normalisation rules (e.g. "
                 "nmt_nfkc) are not supported, only identity");
  }
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (types[i] == kSpControl) im->add_token({id, tokens[i], true, false, false, false}, false);
    if (types[i] == kSpUserDefined) im->add_token({id, tokens[i], false, false, false, false}, false);
  }
  im->finish();
  return im;
}

}  // namespace

// ---------------------------------------------------------------- loaders

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
  const json j = parse_json(path, "tokenizer.json");
  auto im = std::make_unique<Impl>();
  im->source = path;
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail(path, "not a tokenizer.json: no \"model\" object");
  const json& m = j["model"];
  const std::string mtype = opt_string(m, "type", "BPE", path + ": model");
  if (mtype != "BPE" && mtype != "Unigram")
    fail(path, "model type '" + mtype +
                   "' is not supported (supported: BPE (byte-level, or SentencePiece-style with byte_fallback), "
                   "Unigram)");
  if (mtype == "Unigram") {
    im->sp = Impl::Sp::Unigram;
  } else if (opt_bool(m, "byte_fallback", false, path + ": model")) {
    im->sp = Impl::Sp::Bpe;
  }
  if (im->sp != Impl::Sp::None) {
    im->sp_hf = true;
    im->byte_fallback = opt_bool(m, "byte_fallback", false, path + ": model");
    im->fuse_unk = im->sp == Impl::Sp::Unigram || opt_bool(m, "fuse_unk", false, path + ": model");
  }
  if (im->sp == Impl::Sp::Unigram) {
    const std::string where = path + ": model";
    if (!m.contains("vocab") || !m["vocab"].is_array()) fail(where, "Unigram vocab is missing or not an array");
    std::vector<std::pair<std::string, int64_t>> vocab;
    for (const json& e : m["vocab"]) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        fail(where, "Unigram vocab entry " + std::to_string(vocab.size()) + " is not [piece, score]: " +
                        e.dump().substr(0, 120));
      vocab.emplace_back(e[0].get<std::string>(), static_cast<int64_t>(vocab.size()));
      im->scores_hf.push_back(e[1].get<double>());
    }
    std::map<std::string, size_t> seen;
    for (const auto& [p, id] : vocab)
      if (!seen.emplace(p, id).second)
        fail(where, "Unigram vocab has '" + p + "' twice (ids " + std::to_string(seen[p]) + " and " +
                        std::to_string(id) + ")");
    if (vocab.empty()) fail(where, "Unigram vocab is empty");
    set_vocab(*im, vocab, path);
    if (!m.contains("unk_id") || !m["unk_id"].is_number_integer())
      fail(where, "Unigram without an integer unk_id is not supported");
    im->unk_id = token_id_of(m["unk_id"], where, "unk_id");
    if (*im->unk_id >= static_cast<int32_t>(vocab.size()))
      fail(where, "unk_id " + std::to_string(*im->unk_id) + " is outside the vocabulary of " +
                      std::to_string(vocab.size()));
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty())
      fail(path, std::string("BPE with ") + k + " is not supported");
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() != 0.0)
    fail(path, "BPE dropout is not supported");
  im->ignore_merges = opt_bool(m, "ignore_merges", false, path + ": model");
  if (im->ignore_merges && im->sp != Impl::Sp::None)
    fail(path, "BPE with byte_fallback and ignore_merges is not supported");

  if (im->sp != Impl::Sp::Unigram) {  // BPE: vocab {piece: id}, merges
    if (!m.contains("vocab") || !m["vocab"].is_object()) fail(path, "model.vocab is missing or not an object");
    std::vector<std::pair<std::string, int64_t>> vocab;
    vocab.reserve(m["vocab"].size());
    for (const auto& [k, v] : m["vocab"].items()) {
      if (!v.is_number_integer()) fail(path, "model.vocab['" + k + "'] is not an integer id");
      vocab.emplace_back(k, v.get<int64_t>());
    }
    set_vocab(*im, vocab, path);

    if (!m.contains("merges") || !m["merges"].is_array()) fail(path, "model.merges is missing or not an array");
    int32_t rank = 0;
    std::string a, b;
    for (const json& e : m["merges"]) {
      const std::string where = path + ": model.merges[" + std::to_string(rank) + "]";
      if (e.is_string()) {
        if (!split_merge(e.get<std::string>(), a, b)) fail(where, "expected \"left right\", found " + e.dump());
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        fail(where, "expected \"left right\" or [\"left\", \"right\"], found " + e.dump().substr(0, 200));
      }
      add_merge(*im, a, b, rank++, where);
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = im->piece_ids.find(m["unk_token"].get<std::string>());
      if (it != im->piece_ids.end()) im->unk_id = it->second;
    }
  }

  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string())
        fail(path, "added_tokens entry without an integer id and a string content: " +
                       t.dump().substr(0, 200));
      AddedToken tok;
      tok.content = t["content"].get<std::string>();
      const std::string where = path + ": added token '" + tok.content + "'";
      tok.id = token_id_of(t["id"], where, "the token");
      tok.special = opt_bool(t, "special", false, where);
      tok.lstrip = opt_bool(t, "lstrip", false, where);
      tok.rstrip = opt_bool(t, "rstrip", false, where);
      tok.single_word = opt_bool(t, "single_word", false, where);
      im->add_token(tok, opt_bool(t, "normalized", !tok.special, where));
    }
  }

  if (im->sp != Impl::Sp::None) {
    sp_json_pipeline(*im, j, path);
    if (j.contains("post_processor")) detect_bos(*im, j["post_processor"], path);
    im->finish();
    return Tokenizer(std::move(im));
  }
  // Normaliser: none, or NFC (Qwen2), which we accept and do not apply (input assumed NFC).
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    const std::string nt = type_of(n, path + ": normalizer");
    const bool empty_seq = nt == "Sequence" && n.contains("normalizers") && n["normalizers"].empty();
    if (nt != "NFC" && !empty_seq)
      fail(path + ": normalizer", "type '" + nt + "' is not supported (only none or NFC)");
    im->nfc = nt == "NFC";
  }
  im->pre = detect_pre_split(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), path);
  if (j.contains("post_processor")) detect_bos(*im, j["post_processor"], path);
  im->finish();
  return Tokenizer(std::move(im));
}

Tokenizer Tokenizer::from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
  const json v = parse_json(vocab_json, "vocab.json");
  if (!v.is_object()) fail(vocab_json, "expected a JSON object mapping pieces to ids");
  auto im = std::make_unique<Impl>();
  im->source = vocab_json + " + " + merges_txt;
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(v.size());
  for (const auto& [k, id] : v.items()) {
    if (!id.is_number_integer()) fail(vocab_json, "entry '" + k + "' is not an integer id");
    vocab.emplace_back(k, id.get<int64_t>());
  }
  set_vocab(*im, vocab, vocab_json);

  std::istringstream in(read_text(merges_txt, "merges.txt"));
  std::string line, a, b;
  int32_t rank = 0;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    const std::string where = merges_txt + ":" + std::to_string(lineno);
    if (!split_merge(line, a, b)) fail(where, "expected \"left right\", found '" + line + "'");
    add_merge(*im, a, b, rank++, where);
  }
  gpt2_defaults(*im);
  im->pre = PreSplit::Gpt2;
  im->finish();
  return Tokenizer(std::move(im));
}

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
  const std::string& path = f.path();
  const std::string model = f.has("tokenizer.ggml.model") ? f.get_string("tokenizer.ggml.model") : "";
  if (model == "llama" || model == "t5") return Tokenizer(sp_from_gguf(f, model));
  if (model != "gpt2")
    fail(path, "tokenizer.ggml.model = \"" + model +
                   "\" is not supported (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece BPE, "
                   "\"t5\" SentencePiece unigram)");

  auto im = std::make_unique<Impl>();
  im->source = path + " (GGUF tokenizer.ggml.*)";
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  if (pre == "gpt2" || pre == "default") {
    im->pre = PreSplit::Gpt2;
  } else if (pre == "llama-bpe" || pre == "llama3") {
    im->pre = PreSplit::Llama3;
    im->ignore_merges = true;  // as llama.cpp and the Llama-3 tokenizer.json
  } else if (pre == "qwen2") {
    im->pre = PreSplit::Qwen2;
  } else if (pre == "smollm") {
    im->pre = PreSplit::SmolLM;
  } else {
    fail(path, "tokenizer.ggml.pre = \"" + pre +
                   "\" is not supported (supported: gpt2, default, llama-bpe, llama3, qwen2, smollm)");
  }

  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    types = f.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      fail(path, "tokenizer.ggml.token_type has " + std::to_string(types.size()) + " entries, expected " +
                     std::to_string(tokens.size()) + " (one per token)");
  }
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) vocab.emplace_back(tokens[i], static_cast<int64_t>(i));
  set_vocab(*im, vocab, path);

  if (f.has("tokenizer.ggml.merges")) {
    const std::vector<std::string> merges = f.get_string_array("tokenizer.ggml.merges");
    std::string a, b;
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string where = path + ": tokenizer.ggml.merges[" + std::to_string(i) + "]";
      if (!split_merge(merges[i], a, b)) fail(where, "expected \"left right\", found '" + merges[i] + "'");
      add_merge(*im, a, b, static_cast<int32_t>(i), where);
    }
  }
  // Token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
  for (size_t i = 0; i < types.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (types[i] == 3) im->add_token({id, tokens[i], true, false, false, false}, false);
    if (types[i] == 4) im->add_token({id, tokens[i], false, false, false, false}, false);
    if (types[i] == 2) im->unk_id = id;
  }
  auto token_id = [&](const char* key) -> std::optional<int32_t> {
    if (!f.has(key)) return std::nullopt;
    const int64_t id = f.get_int(key);
    if (id < 0 || id >= static_cast<int64_t>(tokens.size()))
      fail(path, std::string(key) + " = " + std::to_string(id) + " is outside the vocabulary of " +
                     std::to_string(tokens.size()) + " tokens");
    return static_cast<int32_t>(id);
  };
  im->bos = token_id("tokenizer.ggml.bos_token_id");
  im->eos = token_id("tokenizer.ggml.eos_token_id");
  im->add_bos = f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
  im->finish();
  return Tokenizer(std::move(im));
}

}  // namespace edgewise

namespace edgewise {

Tokenizer Tokenizer::from_words(const std::string& source, const std::vector<std::string>& words,
                                std::optional<int32_t> bos, const std::vector<std::string>& output_labels) {
  auto im = std::make_unique<Impl>();
  im->source = source;
  im->words = true;
  if (words.empty()) fail(source, "the vocabulary has no words");
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.empty() || w.find_first_of(" \t\n\r\f\v") != std::string::npos)
      fail(source, "word " + std::to_string(i) + " ('" + w + "') is empty or contains a space");
    if (!im->piece_ids.emplace(w, static_cast<int32_t>(i)).second)
      fail(source, "word '" + w + "' appears twice in the vocabulary");
    im->pieces.push_back(w);
  }
  if (bos && (*bos < 0 || *bos >= static_cast<int32_t>(words.size())))
    fail(source, "BOS id " + std::to_string(*bos) + " is outside the vocabulary of " + std::to_string(words.size()));
  im->bos = bos;
  im->add_bos = bos.has_value();
  im->output_labels = output_labels;
  im->finish();
  return Tokenizer(std::move(im));
}

Tokenizer Tokenizer::from_tracr_config(const std::string& config_json) {
  const json j = parse_json(config_json, "config.json");
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    if (!j.is_object() || !j.contains(key) || !j[key].is_array())
      fail(config_json, std::string("missing list '") + key + "'");
    for (const json& v : j[key]) {
      if (!v.is_string()) fail(config_json, std::string("'") + key + "' must hold strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  };
  const std::vector<std::string> words = strings("input_vocab");
  std::optional<int32_t> bos;
  if (j.contains("bos_id")) {
    if (!j["bos_id"].is_number_integer()) fail(config_json, "'bos_id' must be an integer");
    const int64_t id = j["bos_id"].get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(words.size()))
      fail(config_json, "bos_id " + std::to_string(id) + " is outside input_vocab");
    bos = static_cast<int32_t>(id);
  }
  std::vector<std::string> outputs = {"value"};
  if (j.contains("output") && j["output"].is_string() && j["output"].get<std::string>() == "categorical")
    outputs = strings("output_values");
  return from_words(config_json, words, bos, outputs);
}

}  // namespace edgewise
