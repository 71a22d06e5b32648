// Private to src/tokenizer/: the tokenizer's data (Tokenizer::Impl) shared by the loaders
// (load.cpp), the BPE and SentencePiece encoders/decoders (bpe.cpp), the export (export.cpp) and
// the regex pre-split (pretokenize.cpp).
// Not here: file parsing (load.cpp) or the algorithms themselves.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "edgewise/tokenizer.h"

namespace edgewise {

/// Splits text into words with the regular expression(s) of one PreSplit variant, the way
/// HF `tokenizers` does (Split with behaviour Isolated: matches and the gaps between them
/// are words). Compiled once (PCRE2, UTF + UCP, JIT); split() is thread-safe.
class PreSplitter {
 public:
  explicit PreSplitter(PreSplit p);
  ~PreSplitter();
  PreSplitter(const PreSplitter&) = delete;
  PreSplitter& operator=(const PreSplitter&) = delete;

  /// Appends the words of `text` to `out`; together they cover `text` exactly, in order.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

  /// The regular expression of a variant as HF tokenizer.json files write it (with \s).
  static const char* hf_pattern(PreSplit p);

 private:
  void split_regex(std::string_view text, std::vector<std::string_view>& out) const;
  PreSplit pre_;
  void* main_ = nullptr;    // pcre2_code_8*: the variant's pattern
  void* digits_ = nullptr;  // pcre2_code_8*: \p{N} (SmolLM only)
};

/// Rust's char::is_whitespace (Unicode White_Space) and char::is_alphanumeric (Alphabetic or
/// Numeric) for the code point starting at / ending before a byte offset; used by added
/// tokens' lstrip / rstrip / single_word, as in HF's AddedVocabulary.
size_t whitespace_prefix_len(std::string_view s);
size_t whitespace_suffix_len(std::string_view s);
bool starts_with_alnum(std::string_view s);
bool ends_with_alnum(std::string_view s);

/// SentencePiece piece types, as sentencepiece_model.proto and llama.cpp's token_type number them.
enum SpType : uint8_t { kSpNormal = 1, kSpUnknown = 2, kSpControl = 3, kSpUserDefined = 4, kSpUnused = 5, kSpByte = 6 };

/// A byte trie over pieces (unigram lattices): node 0 is the root.
struct SpTrie {
  std::vector<int32_t> value{-1};                  // node -> piece id ending there, -1 if none
  std::unordered_map<uint64_t, int32_t> children;  // (node << 8 | byte) -> node
  void insert(std::string_view s, int32_t id);
  int32_t child(int32_t node, uint8_t b) const {
    auto it = children.find(static_cast<uint64_t>(node) << 8 | b);
    return it == children.end() ? -1 : it->second;
  }
};

struct Tokenizer::Impl {
  std::string source;
  // Model vocabulary: id -> byte-level piece ("" for ids only an added token uses) and back.
  std::vector<std::string> pieces;
  std::unordered_map<std::string, int32_t> piece_ids;
  // BPE merges: (left id << 32 | right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::array<int32_t, 256> byte_ids{};  // byte -> id of its one-character piece, -1 if absent
  std::optional<int32_t> unk_id;
  bool ignore_merges = false;  // HF BPE.ignore_merges: a word found whole in the vocab is one token
  bool nfc = false;  // tokenizer.json declared an NFC normalizer (accepted, not applied; exported)

  PreSplit pre = PreSplit::Gpt2;
  std::unique_ptr<PreSplitter> splitter;

  std::vector<AddedToken> added;
  std::vector<bool> added_normalized;  // parallel to `added`: HF's `normalized` flag
  std::unordered_map<int32_t, size_t> added_by_id;
  // Per first byte: indices into `added`, longest content first (one table per pass:
  // [0] tokens matched on the raw text, [1] "normalized" tokens matched on what is left).
  std::array<std::array<std::vector<uint32_t>, 256>, 2> added_by_byte;

  std::optional<int32_t> bos, eos;
  bool add_bos = false;

  bool words = false;                       // word level (from_words): no BPE, no byte table

  // SentencePiece-style vocabularies (sp != None): text is not pre-split; spaces become U+2581.
  enum class Sp : uint8_t { None, Bpe, Unigram };
  enum class SpPrefix : uint8_t { Never, Always, First };
  Sp sp = Sp::None;
  // From tokenizer.json: HF `tokenizers` semantics (BPE by merge rank over characters; unigram in
  // f64 over every piece). Otherwise (GGUF) sentencepiece's: BPE by piece score, leftmost on ties,
  // merges only into normal / user-defined / unused pieces; unigram in f32 with its types.
  bool sp_hf = false;
  SpPrefix sp_prefix = SpPrefix::Never;  // where U+2581 is prepended to a text segment
  bool sp_prefix_unless_space = false;   // HF Metaspace: not when the segment starts with U+2581
  bool sp_split = false;                 // HF Metaspace split: words start at each U+2581
  bool sp_strip = false;                 // decode drops one leading space (the dummy prefix's)
  bool byte_fallback = false;            // characters without a piece -> <0xAB> byte pieces
  bool fuse_unk = true;                  // consecutive unknown characters -> one unk (HF BPE flag)
  std::vector<float> scores;             // per id (sentencepiece semantics) ...
  std::vector<double> scores_hf;         // ... or HF Unigram's f64 scores
  std::vector<uint8_t> types;            // per id, SpType (GGUF); empty for tokenizer.json
  std::array<int32_t, 256> sp_byte_ids{};  // byte -> id of its <0xAB> piece, -1 if absent
  // Views into piece_ids' keys (built by finish()): pieces merges / lattices may produce
  // (sentencepiece's pieces_: normal, user-defined, unused) and the others, which sentencepiece
  // looks up first (control, unknown, byte).
  std::unordered_map<std::string_view, int32_t> sp_pieces, sp_reserved;
  SpTrie sp_trie;  // unigram
  float sp_min_score = 0, sp_max_score = 0;
  double sp_min_score_hf = 0;
  std::vector<std::string> output_labels;  // the model's own output space (Tracr), when set

  // Word cache (raw word bytes -> ids); bounded, guarded for concurrent encode() calls.
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  /// Builds byte_ids, the added-token tables and the splitter. Call once after loading.
  void finish();
  /// Adds one added token (content non-empty), extending `pieces` when the id is new.
  void add_token(const AddedToken& t, bool normalized);

  /// `continuation`: the text follows other text (SentencePiece: no dummy prefix at its start).
  void encode(std::string_view text, std::vector<int32_t>& out, bool continuation = false) const;
  void encode_words(std::string_view text, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  /// Applies the ranked merges (HF BPE: lowest rank, then leftmost) to symbol ids in place.
  void merge_ranked(std::vector<int32_t>& ids) const;

  // SentencePiece (bpe.cpp): one text segment between added tokens; `first`: it starts the text.
  void sp_encode(std::string_view text, bool first, std::vector<int32_t>& out, bool no_prefix = false) const;
  void sp_bpe_scored(const std::string& norm, std::vector<int32_t>& out) const;
  void sp_bpe_ranked(std::string_view word, std::vector<int32_t>& out) const;
  void sp_unigram(const std::string& norm, std::vector<int32_t>& out) const;
  /// Appends the id of a piece found by the model (unk: byte fallback or one unk per run).
  void sp_emit(std::string_view piece, int32_t id, bool& prev_unk, std::vector<int32_t>& out) const;
  /// Byte value of a <0xAB> byte piece id, -1 for any other id.
  int sp_byte_of(int32_t id) const;
  std::string sp_decode(const std::vector<int32_t>& ids, bool strip) const;
};

}  // namespace edgewise
