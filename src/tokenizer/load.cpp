// Loading byte-level BPE vocabularies: HF tokenizer.json, vocab.json + merges.txt, and GGUF
// metadata (tokenizer.ggml.*). Each loader fills a Tokenizer::Impl and validates it: every
// merge must name two known pieces whose concatenation is a known piece, ids must be
// non-negative, and the pre-tokenizer must be one of the supported variants; anything else is
// an Error naming the file.
// Not here: SentencePiece vocabularies (GGUF tokenizer.ggml.model = "llama"), normalisers other
// than none / NFC (NFC is accepted and input is assumed to be NFC already), WordPiece/Unigram.
#include <fstream>
#include <map>
#include <sstream>

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
  if (mtype != "BPE") fail(path, "model type '" + mtype + "' is not supported (only byte-level BPE)");
  if (opt_bool(m, "byte_fallback", false, path + ": model"))
    fail(path, "BPE with byte_fallback (SentencePiece-style) is not supported; only byte-level BPE");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty())
      fail(path, std::string("BPE with ") + k + " is not supported");
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() != 0.0)
    fail(path, "BPE dropout is not supported");
  im->ignore_merges = opt_bool(m, "ignore_merges", false, path + ": model");

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
  if (model == "llama")
    fail(path, "tokenizer.ggml.model = \"llama\": SentencePiece vocabularies are not supported yet "
               "(only byte-level BPE, \"gpt2\")");
  if (model != "gpt2")
    fail(path, "tokenizer.ggml.model = \"" + model + "\" is not supported (only byte-level BPE, \"gpt2\")");

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
