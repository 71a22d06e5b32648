// Private to src/tokenizer/: the tokenizer's data (Tokenizer::Impl) shared by the loaders
// (load.cpp), the BPE encoder/decoder (bpe.cpp), and the regex pre-split (pretokenize.cpp).
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
  std::vector<std::string> output_labels;  // the model's own output space (Tracr), when set

  // Word cache (raw word bytes -> ids); bounded, guarded for concurrent encode() calls.
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  /// Builds byte_ids, the added-token tables and the splitter. Call once after loading.
  void finish();
  /// Adds one added token (content non-empty), extending `pieces` when the id is new.
  void add_token(const AddedToken& t, bool normalized);

  void encode(std::string_view text, std::vector<int32_t>& out) const;
  void encode_words(std::string_view text, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
};

}  // namespace edgewise
