// Byte-level BPE encoding and decoding, and the Tokenizer's public methods.
// encode: added tokens are found first (leftmost, longest, with HF's lstrip / rstrip /
// single_word rules); the text between them is pre-split into words (pretokenize.cpp); each
// word's bytes start as one symbol per byte and merges are applied lowest rank first, leftmost
// first on ties, exactly as HF `tokenizers` (models/bpe/word.rs) orders them.
// decode: byte-level pieces back to bytes; added tokens verbatim.
// SentencePiece vocabularies take the same added-token pass, then spm.cpp's segmentation.
// Not here: loading vocabularies (load.cpp), SentencePiece (spm.cpp), BOS/EOS policy beyond
// encode_for_model().
#include <algorithm>
#include <cfloat>
#include <limits>
#include <queue>

#include "edgewise/error.h"
#include "edgewise/tokenizer.h"
#include "tokenizer_impl.h"
#include "../util/unicode.h"

namespace edgewise {

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

constexpr size_t kCacheMaxEntries = 1 << 16;  // words; the cache is cleared when it fills up
constexpr size_t kCacheMaxWordBytes = 256;    // longer words are not cached

}  // namespace

// ---------------------------------------------------------------- Impl

void Tokenizer::Impl::add_token(const AddedToken& t, bool normalized) {
  if (t.content.empty()) return;
  if (t.id < 0) fail(source, "added token '" + t.content + "' has a negative id");
  if (auto it = added_by_id.find(t.id); it != added_by_id.end()) {
    added[it->second] = t;  // a later entry for the same id wins
    added_normalized[it->second] = normalized;
    return;
  }
  added_by_id[t.id] = added.size();
  added.push_back(t);
  added_normalized.push_back(normalized);
  if (static_cast<size_t>(t.id) >= pieces.size()) pieces.resize(t.id + 1);
  if (pieces[t.id].empty()) pieces[t.id] = t.content;
}

void Tokenizer::Impl::finish() {
  const auto& table = unicode::byte_level_table();
  for (int b = 0; b < 256; ++b) {
    auto it = piece_ids.find(table.byte_to_char[b]);
    byte_ids[b] = it == piece_ids.end() ? -1 : it->second;
  }
  for (auto& pass : added_by_byte)
    for (auto& v : pass) v.clear();
  for (size_t i = 0; i < added.size(); ++i) {
    const int pass = added_normalized[i] ? 1 : 0;
    added_by_byte[pass][static_cast<uint8_t>(added[i].content[0])].push_back(static_cast<uint32_t>(i));
  }
  for (auto& pass : added_by_byte)
    for (auto& v : pass)
      std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
        return added[a].content.size() > added[b].content.size();
      });
  splitter = std::make_unique<PreSplitter>(pre);
  cache.clear();

  // SentencePiece tables.
  sp_pieces.clear();
  sp_reserved.clear();
  sp_trie = SpTrie();
  sp_byte_ids.fill(-1);
  if (sp == Sp::None) return;
  static const char* const hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    auto it = piece_ids.find(name);
    if (it != piece_ids.end() && (types.empty() || types[it->second] == kSpByte)) sp_byte_ids[b] = it->second;
  }
  sp_min_score = FLT_MAX;
  sp_max_score = FLT_MIN;  // as sentencepiece (the smallest positive float, not the lowest)
  sp_min_score_hf = std::numeric_limits<double>::infinity();
  // The model's vocabulary (piece_ids: its keys do not move), not added tokens beyond it.
  for (const auto& [p, id] : piece_ids) {
    const uint8_t t = types.empty() ? static_cast<uint8_t>(kSpNormal) : types[id];
    if (t == kSpNormal || t == kSpUserDefined || t == kSpUnused) {
      sp_pieces.emplace(p, id);
    } else {
      sp_reserved.emplace(p, id);
    }
    if (!types.empty() && t == kSpNormal) {
      sp_min_score = std::min(sp_min_score, scores[id]);
      sp_max_score = std::max(sp_max_score, scores[id]);
    }
    if (sp_hf && sp == Sp::Unigram) sp_min_score_hf = std::min(sp_min_score_hf, scores_hf[id]);
    if (sp == Sp::Unigram && (sp_hf || t == kSpNormal || t == kSpUserDefined || t == kSpUnused))
      sp_trie.insert(p, id);
  }
}

void SpTrie::insert(std::string_view s, int32_t id) {
  int32_t node = 0;
  for (char c : s) {
    const uint64_t key = static_cast<uint64_t>(node) << 8 | static_cast<uint8_t>(c);
    auto it = children.find(key);
    if (it == children.end()) {
      it = children.emplace(key, static_cast<int32_t>(value.size())).first;
      value.push_back(-1);
    }
    node = it->second;
  }
  if (value[node] < 0) value[node] = id;
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = piece_ids.find(unicode::bytes_to_byte_level(word));
    if (it != piece_ids.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(std::string(word));
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }

  std::vector<int32_t> ids;
  ids.reserve(word.size());
  for (char c : word) {
    int32_t id = byte_ids[static_cast<uint8_t>(c)];
    if (id < 0) {
      if (!unk_id) continue;  // HF drops characters missing from a vocabulary without unk
      id = *unk_id;
    }
    ids.push_back(id);
  }
  merge_ranked(ids);
  const size_t start = out.size();
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= kCacheMaxEntries) cache.clear();
    cache.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

void Tokenizer::Impl::merge_ranked(std::vector<int32_t>& ids) const {
  // Symbols in a doubly linked list over an array; removed ones have alive = false.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(ids.size());
  for (int32_t id : ids) {
    const auto n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  }
  if (!sym.empty()) sym.back().next = -1;

  struct Merge {
    int32_t rank, pos, new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  auto push_pair = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    auto it = merges.find(pair_key(sym[pos].id, sym[nx].id));
    if (it != merges.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& s = sym[top.pos];
    if (!s.alive || s.next < 0) continue;
    const int32_t nx = s.next;
    // Skip entries that no longer describe the pair at this position (HF checks the new id).
    auto it = merges.find(pair_key(s.id, sym[nx].id));
    if (it == merges.end() || it->second.second != top.new_id) continue;
    s.id = top.new_id;
    sym[nx].alive = false;
    s.next = sym[nx].next;
    if (s.next >= 0) sym[s.next].prev = top.pos;
    if (s.prev >= 0) push_pair(s.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (const Symbol& s : sym)
    if (s.alive) ids.push_back(s.id);
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::string_view> words;
  splitter->split(text, words);
  for (std::string_view w : words) bpe_word(w, out);
}

namespace {

// One piece of the input: either plain text or an added token (index into Impl::added).
struct Piece {
  size_t begin, end;
  int64_t added;  // -1 for plain text
};

// HF AddedVocabulary::find_matches for one pass: leftmost-longest matches of the tokens in
// `table`, with single_word / lstrip / rstrip applied. Appends pieces covering [begin, end).
void find_added(const Tokenizer::Impl& im, const std::array<std::vector<uint32_t>, 256>& table,
                std::string_view text, size_t begin, size_t end, std::vector<Piece>& out) {
  const std::string_view s = text.substr(begin, end - begin);
  size_t start_offset = 0;  // end of the last emitted piece, relative to s
  size_t pos = 0;
  while (pos < s.size()) {
    const auto& cands = table[static_cast<uint8_t>(s[pos])];
    int64_t hit = -1;
    for (uint32_t i : cands) {
      const std::string& c = im.added[i].content;
      if (s.compare(pos, c.size(), c) == 0) {
        hit = i;
        break;  // longest first
      }
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = im.added[hit];
    size_t mstart = pos, mstop = pos + t.content.size();
    pos = mstop;  // matching resumes after this match whether or not it is used
    if (t.single_word) {
      const bool start_ok = mstart == 0 || !ends_with_alnum(s.substr(0, mstart));
      const bool stop_ok = mstop == s.size() || !starts_with_alnum(s.substr(mstop));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      const size_t ws = whitespace_suffix_len(s.substr(0, mstart));
      mstart = std::max(mstart - ws, start_offset);
    }
    if (t.rstrip) {
      mstop += whitespace_prefix_len(s.substr(mstop));
      pos = mstop;  // (HF would let a later match start inside the stripped spaces; pieces overlap)
    }
    if (start_offset < mstart) out.push_back({begin + start_offset, begin + mstart, -1});
    out.push_back({begin + mstart, begin + mstop, hit});
    start_offset = mstop;
  }
  if (start_offset < s.size()) out.push_back({begin + start_offset, end, -1});
}

}  // namespace

void Tokenizer::Impl::encode_words(std::string_view text, std::vector<int32_t>& out) const {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  for (size_t i = 0; i < text.size();) {
    if (space(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !space(text[j])) ++j;
    const std::string w(text.substr(i, j - i));
    auto it = piece_ids.find(w);
    if (it == piece_ids.end()) {
      std::string known;
      for (size_t k = 0; k < pieces.size() && k < 64; ++k) known += (k ? " " : "") + pieces[k];
      fail(source, "'" + w + "' is not a word of this vocabulary (its words: " + known +
                       (pieces.size() > 64 ? " ..." : "") + ")");
    }
    out.push_back(it->second);
    i = j;
  }
}

void Tokenizer::Impl::encode(std::string_view text, std::vector<int32_t>& out, bool continuation) const {
  if (words) {
    encode_words(text, out);
    return;
  }
  if (added.empty()) {
    if (sp != Sp::None) {
      sp_encode(text, true, out, continuation);
    } else {
      encode_plain(text, out);
    }
    return;
  }
  std::vector<Piece> first, parts;
  find_added(*this, added_by_byte[0], text, 0, text.size(), first);
  for (const Piece& p : first) {
    if (p.added >= 0) {
      parts.push_back(p);
    } else {
      find_added(*this, added_by_byte[1], text, p.begin, p.end, parts);
    }
  }
  for (const Piece& p : parts) {
    if (p.added >= 0) {
      out.push_back(added[p.added].id);
    } else if (sp != Sp::None) {
      sp_encode(text.substr(p.begin, p.end - p.begin), p.begin == 0, out, continuation && p.begin == 0);
    } else {
      encode_plain(text.substr(p.begin, p.end - p.begin), out);
    }
  }
}

// ---------------------------------------------------------------- Tokenizer

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_continuation(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, out, true);
  return out;
}

std::vector<int32_t> Tokenizer::encode_for_model(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 5);
  if (impl_->add_bos && impl_->bos) out.push_back(*impl_->bos);
  impl_->encode(text, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail(impl_->source, "cannot decode token id " + std::to_string(id) + ": the vocabulary has " +
                              std::to_string(vocab_size()) + " ids");
    if (impl_->words) {
      out += (out.empty() ? "" : " ") + impl_->pieces[id];
      continue;
    }
    if (impl_->sp != Impl::Sp::None) continue;  // checked here, decoded below
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
      out += impl_->added[it->second].content;
      continue;
    }
    const std::string& p = impl_->pieces[id];
    // As HF's ByteLevel decoder: a piece with a character outside the byte table is kept as is.
    const size_t mark = out.size();
    if (!unicode::byte_level_to_bytes(p, out)) {
      out.resize(mark);
      out += p;
    }
  }
  if (impl_->sp != Impl::Sp::None) return impl_->sp_decode(ids, true);
  return out;
}

const std::string& Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(impl_->source, "token id " + std::to_string(id) + " is out of range: the vocabulary has " +
                            std::to_string(vocab_size()) + " ids");
  return impl_->pieces[id];
}

std::string Tokenizer::token_text(int32_t id) const {
  // SentencePiece: the piece's own text (" the" for "▁the"), without the decoder's strip of the
  // dummy prefix, which belongs to the start of a text.
  if (impl_->sp != Impl::Sp::None) {
    piece(id);  // range check
    return impl_->sp_decode({id}, false);
  }
  return decode({id});
}

std::string Tokenizer::decode_shown(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<int32_t> run;  // ids the vocabulary has, decoded together (multi-byte characters)
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab_size()) {
      run.push_back(id);
      continue;
    }
    out += decode(run) + "<id " + std::to_string(id) + ">";
    run.clear();
  }
  return out + decode(run);
}

std::string Tokenizer::token_label(int32_t id) const { return decode_shown({id}); }

std::optional<int32_t> Tokenizer::find(const std::string& piece) const {
  if (auto it = impl_->piece_ids.find(piece); it != impl_->piece_ids.end()) return it->second;
  for (const AddedToken& t : impl_->added)
    if (t.content == piece) return t.id;
  return std::nullopt;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->pieces.size()); }
bool Tokenizer::word_level() const { return impl_->words; }
bool Tokenizer::sentencepiece() const { return impl_->sp != Impl::Sp::None; }
std::string Tokenizer::describe() const {
  const Impl& im = *impl_;
  if (im.words) return "word level (words separated by spaces)";
  if (im.sp == Impl::Sp::None) return std::string("byte-level BPE, pre-split ") + pre_split_name(im.pre);
  std::string s = im.sp == Impl::Sp::Bpe ? "SentencePiece BPE (" : "SentencePiece unigram (";
  s += im.sp == Impl::Sp::Bpe ? (im.sp_hf ? "merge ranks" : "piece scores") : (im.sp_hf ? "f64 scores" : "f32 scores");
  s += im.byte_fallback ? "; byte fallback" : "; unknown characters -> unk";
  const char* prefix = im.sp_prefix == Impl::SpPrefix::Never    ? "; no dummy prefix"
                       : im.sp_prefix == Impl::SpPrefix::First ? "; dummy prefix at the start"
                                                               : "; dummy prefix";
  return s + prefix + ")";
}
const std::vector<std::string>& Tokenizer::output_labels() const { return impl_->output_labels; }
int32_t Tokenizer::n_outputs() const {
  return impl_->output_labels.empty() ? vocab_size() : static_cast<int32_t>(impl_->output_labels.size());
}
std::optional<int32_t> Tokenizer::answer_id(const std::string& text) const {
  if (!impl_->output_labels.empty()) {
    const size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
    const std::string t = a == std::string::npos ? std::string() : text.substr(a, b - a + 1);
    for (size_t i = 0; i < impl_->output_labels.size(); ++i)
      if (impl_->output_labels[i] == t) return static_cast<int32_t>(i);
    return std::nullopt;
  }
  const std::vector<int32_t> ids = encode_continuation(text);
  if (ids.empty()) return std::nullopt;
  return ids[0];
}
PreSplit Tokenizer::pre_split() const { return impl_->pre; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
void Tokenizer::set_add_bos(bool v) { impl_->add_bos = v; }
void Tokenizer::set_bos_id(std::optional<int32_t> id) { impl_->bos = id; }
void Tokenizer::set_eos_id(std::optional<int32_t> id) { impl_->eos = id; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace edgewise
