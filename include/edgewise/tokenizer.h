// Byte-level BPE tokenizer (GPT-2 style), loaded from tokenizer.json, from vocab.json +
// merges.txt, or from GGUF metadata. Pre-split variants follow the models that use them
// (GPT-2, Llama-3, Qwen2, SmolLM); added/special tokens are matched before BPE.
// SentencePiece vocabularies are the same class (docs/TOKENIZERS.md): BPE by piece scores
// (GGUF tokenizer.ggml.model "llama": Llama 2, CodeLlama, Mistral, Gemma) or unigram ("t5"), and
// their tokenizer.json forms (BPE with byte_fallback, Unigram); spaces become U+2581, no
// pre-split, characters without a piece fall back to <0xAB> byte pieces (or unk).
// A word-level vocabulary (Tracr's compiled models: each token a word, text split at spaces)
// is the same class, made by from_words; it may name an output space of its own (output_labels).
// Not here: normalisers other than none / NFC / SentencePiece's spaces (no nmt_nfkc, no
// remove_extra_whitespaces), chat templates.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgewise {

class GgufFile;

/// How text is split into words before BPE.
enum class PreSplit {
  Gpt2,    ///< 's|'t|... ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,  ///< Llama-3 pattern, numbers in groups of at most 3 digits, case-insensitive contractions
  Qwen2,   ///< Llama-3-like with single digits (\p{N})
  SmolLM,  ///< each digit alone, then the GPT-2 pattern (HF: Digits(individual) + ByteLevel)
};
const char* pre_split_name(PreSplit p);

struct AddedToken {
  int32_t id;
  std::string content;
  bool special = true;
  bool lstrip = false, rstrip = false, single_word = false;
};

class Tokenizer {
 public:
  static Tokenizer from_tokenizer_json(const std::string& path);
  static Tokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);
  static Tokenizer from_gguf(const GgufFile& f);
  /// A word-level vocabulary: id i is words[i]; text is split at ASCII whitespace and each word
  /// must be one of them (an unknown word is an Error naming it and listing the words). `bos`
  /// (an id) is prepended by encode_for_model. `output_labels`, when not empty, is the model's
  /// output space (its rows of output.weight) when it differs from the input words: answers of
  /// tasks and datasets are then those labels. `source` names it in messages.
  static Tokenizer from_words(const std::string& source, const std::vector<std::string>& words,
                              std::optional<int32_t> bos, const std::vector<std::string>& output_labels = {});
  /// The vocabulary of a Tracr model's config.json (tools/tracr/export.py): input_vocab, bos_id,
  /// and output_values (categorical) or one output "value" (numerical).
  static Tokenizer from_tracr_config(const std::string& config_json);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// Token ids of `text` (added tokens recognised; no BOS).
  std::vector<int32_t> encode(std::string_view text) const;
  /// encode() of text that follows other text, as an answer follows its prompt: the same as
  /// encode() except for SentencePiece vocabularies with a dummy prefix, where no U+2581 is
  /// prepended (" Mary" -> "▁Mary", not "▁" "▁Mary"). Byte-level BPE: identical to encode().
  std::vector<int32_t> encode_continuation(std::string_view text) const;
  /// encode() with the BOS token prepended when add_bos() is set.
  std::vector<int32_t> encode_for_model(std::string_view text) const;
  /// Text of ids (byte-level decoding, or SentencePiece's: U+2581 -> ' ', byte pieces reassembled,
  /// the dummy prefix's leading space dropped; special tokens included verbatim).
  std::string decode(const std::vector<int32_t>& ids) const;
  /// The vocabulary string of one id (e.g. "Ġthe", "▁the"), and its decoded bytes (" the").
  const std::string& piece(int32_t id) const;
  std::string token_text(int32_t id) const;
  /// decode / token_text for display: an id beyond the vocabulary (a padding row of an embedding
  /// larger than the tokenizer, as Qwen2.5's) is shown as "<id 151700>" instead of failing.
  std::string decode_shown(const std::vector<int32_t>& ids) const;
  std::string token_label(int32_t id) const;
  std::optional<int32_t> find(const std::string& piece) const;

  int32_t vocab_size() const;
  PreSplit pre_split() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  bool add_bos() const;
  void set_add_bos(bool v);
  void set_bos_id(std::optional<int32_t> id);
  void set_eos_id(std::optional<int32_t> id);
  const std::vector<AddedToken>& added_tokens() const;
  /// Where it was loaded from (for `edgewise info`).
  const std::string& source() const;
  /// Made by from_words: text is words separated by spaces, decode joins them with spaces.
  bool word_level() const;
  /// A SentencePiece vocabulary (BPE by scores or ranks, or unigram): no pre-split, so
  /// pre_split() means nothing for it.
  bool sentencepiece() const;
  /// What the vocabulary is, in one line for `edgewise info`: "byte-level BPE, pre-split llama3",
  /// "SentencePiece BPE (piece scores; byte fallback; dummy prefix)", "word level ...".
  std::string describe() const;
  /// The model's output space when it is not the vocabulary (Tracr), else empty.
  const std::vector<std::string>& output_labels() const;
  /// The number of answers ids can name: output_labels' size when set, else vocab_size().
  int32_t n_outputs() const;
  /// The output id of an answer: with output labels, the label equal to `text` without
  /// surrounding spaces (none: nullopt); without, the first token of encode_continuation(text)
  /// (none: nullopt).
  std::optional<int32_t> answer_id(const std::string& text) const;

  /// The text of a Hugging Face `tokenizer.json` that `tokenizers` (and transformers'
  /// PreTrainedTokenizerFast) load into a tokenizer giving the same ids as this one: BPE model
  /// (vocabulary, merges in rank order, ignore_merges), the pre-split variant's pre-tokenizer,
  /// ByteLevel decoder, added tokens with their flags, and a TemplateProcessing post-processor
  /// prepending BOS when add_bos() is set. Error if a piece is not valid UTF-8 (JSON needs it).
  std::string to_hf_json() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgewise
