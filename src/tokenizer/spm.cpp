// SentencePiece encoding and decoding (docs/TOKENIZERS.md): after the added-token pass of
// bpe.cpp, each text segment is normalised (' ' -> U+2581, the dummy prefix) and segmented
// without a pre-split: BPE by piece score as sentencepiece's bpe_model.cc (GGUF) or by merge
// rank over characters as HF tokenizers (tokenizer.json), or unigram Viterbi as sentencepiece's
// EncodeOptimized (f32) / HF (f64); characters without a piece fall back to <0xAB> byte pieces or
// one unk per run. Decoding joins pieces, turns U+2581 back into spaces and reassembles bytes.
// Not here: loading vocabularies (load.cpp), the added-token pass and the public methods (bpe.cpp).
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

const char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space
constexpr size_t kSpaceLen = 3;

// sentencepiece's string_util::OneCharLen: the length a UTF-8 lead byte announces (1 otherwise).
size_t one_char_len(uint8_t c) { return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4]; }

// Byte length of the character at s[i]: a valid UTF-8 sequence, else 1 (an invalid byte is a
// character of its own, which no piece holds: it falls back to its byte piece).
size_t char_len(std::string_view s, size_t i) {
  size_t len = 1;
  unicode::utf8_next(s, i, len);
  return len;
}

}  // namespace

int Tokenizer::Impl::sp_byte_of(int32_t id) const {
  const std::string& p = pieces[id];
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  auto hexval = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hexval(p[3]), lo = hexval(p[4]);
  if (hi < 0 || lo < 0) return -1;
  const int b = hi * 16 + lo;
  return sp_byte_ids[b] == id ? b : -1;
}

void Tokenizer::Impl::sp_emit(std::string_view piece, int32_t id, bool& prev_unk, std::vector<int32_t>& out) const {
  const bool unk = id < 0 || (unk_id && id == *unk_id);
  if (!unk) {
    out.push_back(id);
    prev_unk = false;
    return;
  }
  if (byte_fallback) {
    // sentencepiece decomposes an unknown piece into its bytes; HF does so only when every byte
    // has a piece (else unk), which sentencepiece guarantees by refusing models without all 256.
    bool all = true;
    for (char c : piece) all = all && sp_byte_ids[static_cast<uint8_t>(c)] >= 0;
    if (all) {
      for (char c : piece) out.push_back(sp_byte_ids[static_cast<uint8_t>(c)]);
      prev_unk = false;
      return;
    }
  }
  if (!unk_id) return;  // HF drops characters missing from a vocabulary without unk
  if (!(prev_unk && fuse_unk)) out.push_back(*unk_id);  // a run of unknowns is one unk
  prev_unk = true;
}

void Tokenizer::Impl::sp_encode(std::string_view text, bool first, std::vector<int32_t>& out, bool no_prefix) const {
  if (text.empty()) return;
  // Normalise: U+2581 for every ' ', and the dummy prefix where the model adds one.
  std::string norm;
  norm.reserve(text.size() + text.size() / 2 + kSpaceLen);
  bool prefix = sp_prefix == SpPrefix::Always || (sp_prefix == SpPrefix::First && first);
  if (prefix && sp_prefix_unless_space && (text[0] == ' ' || text.substr(0, kSpaceLen) == kSpace)) prefix = false;
  if (no_prefix) prefix = false;
  if (prefix) norm += kSpace;
  for (char c : text) {
    if (c == ' ') {
      norm += kSpace;
    } else {
      norm += c;
    }
  }
  if (sp == Sp::Unigram) {
    sp_unigram(norm, out);
  } else if (!sp_hf) {
    sp_bpe_scored(norm, out);
  } else if (!sp_split) {
    sp_bpe_ranked(norm, out);
  } else {
    // Metaspace split: a word starts at every U+2581 (HF's MergedWithNext).
    size_t start = 0;
    for (size_t i = kSpaceLen; i + kSpaceLen <= norm.size(); ++i)
      if (norm.compare(i, kSpaceLen, kSpace) == 0) {
        sp_bpe_ranked(std::string_view(norm).substr(start, i - start), out);
        start = i;
      }
    sp_bpe_ranked(std::string_view(norm).substr(start), out);
  }
}

// HF BPE over characters (tokenizer.json with byte_fallback): a character that is a piece is a
// symbol; any other becomes its byte pieces (when all exist) or unk (runs fused with fuse_unk);
// then the ranked merges.
void Tokenizer::Impl::sp_bpe_ranked(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  bool prev_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t len = char_len(word, i);
    const std::string_view ch = word.substr(i, len);
    auto it = piece_ids.find(std::string(ch));  // HF: any piece of the model's vocabulary
    if (it != piece_ids.end()) {
      ids.push_back(it->second);
      prev_unk = false;
    } else {
      sp_emit(ch, -1, prev_unk, ids);
    }
    i += len;
  }
  merge_ranked(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

// sentencepiece's bpe_model.cc: symbols are characters; the adjacent pair whose concatenation is a
// piece (normal, user-defined or unused) with the highest score merges first, the leftmost on equal
// scores; merges into unused pieces are undone at the end. A priority queue of candidate pairs
// with lazy invalidation keeps it O(n log n) on long words.
void Tokenizer::Impl::sp_bpe_scored(const std::string& norm, std::vector<int32_t>& out) const {
  struct Symbol {
    uint32_t begin, len;
    int32_t prev, next;
  };
  std::vector<Symbol> sym;
  sym.reserve(norm.size());
  for (size_t i = 0; i < norm.size();) {
    const size_t len = char_len(norm, i);
    const auto n = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), n - 1, -1});
    if (n > 0) sym[n - 1].next = n;
    i += len;
  }
  struct Pair {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  auto lower = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> queue(lower);
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unmerge;  // unused pieces
  auto view = [&](const Symbol& s) { return std::string_view(norm).substr(s.begin, s.len); };
  auto add_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string_view merged = std::string_view(norm).substr(sym[l].begin, sym[l].len + sym[r].len);
    auto it = sp_pieces.find(merged);
    if (it == sp_pieces.end()) return;
    queue.push({scores[it->second], l, r, static_cast<uint32_t>(merged.size())});
    if (types[it->second] == kSpUnused) unmerge[merged] = {view(sym[l]), view(sym[r])};
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) add_pair(i, i + 1);
  while (!queue.empty()) {
    const Pair top = queue.top();
    queue.pop();
    Symbol& l = sym[top.left];
    Symbol& r = sym[top.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;  // stale
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    r.len = 0;
    add_pair(l.prev, top.left);
    add_pair(top.left, l.next);
  }
  auto id_of = [&](std::string_view p) -> int32_t {
    if (auto it = sp_reserved.find(p); it != sp_reserved.end()) return it->second;
    if (auto it = sp_pieces.find(p); it != sp_pieces.end()) return it->second;
    return -1;
  };
  bool prev_unk = false;
  std::vector<std::string_view> stack;
  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    stack.assign(1, view(sym[i]));
    while (!stack.empty()) {  // resegment unused pieces into what merged into them, left first
      const std::string_view p = stack.back();
      stack.pop_back();
      const int32_t id = id_of(p);
      auto um = id >= 0 && types[id] == kSpUnused ? unmerge.find(p) : unmerge.end();
      if (um != unmerge.end()) {
        stack.push_back(um->second.second);
        stack.push_back(um->second.first);
        continue;
      }
      sp_emit(p, id, prev_unk, out);
    }
  }
}

namespace {

// The best segmentation of `norm` by the sum of piece scores (sentencepiece's EncodeOptimized /
// HF's encode_optimized, which is its port): a forward pass over character starts keeping the
// best path ending at each byte, the first candidate winning ties. Real: float for sentencepiece,
// double for HF. Unknown characters (no single-character piece) score min_score - 10.
template <class Real>
void unigram_viterbi(const Tokenizer::Impl& im, const std::string& norm,
                     std::vector<std::pair<uint32_t, int32_t>>& path) {
  struct Node {
    Real score = 0;
    int32_t start = -1, id = -1;
  };
  const size_t n = norm.size();
  std::vector<Node> best(n + 1);
  const Real unk_score =
      im.sp_hf ? static_cast<Real>(im.sp_min_score_hf - 10.0) : static_cast<Real>(im.sp_min_score - 10.0f);
  const int32_t unk = im.unk_id ? *im.unk_id : -1;
  for (size_t start = 0; start < n;) {
    const Real here = best[start].score;
    const size_t mblen = std::min(one_char_len(static_cast<uint8_t>(norm[start])), n - start);
    bool single = false;
    int32_t node = 0;
    for (size_t k = start; k < n; ++k) {
      node = im.sp_trie.child(node, static_cast<uint8_t>(norm[k]));
      if (node < 0) break;
      const int32_t id = im.sp_trie.value[node];
      if (id < 0) continue;
      const size_t length = k + 1 - start;
      Node& target = best[k + 1];
      if (im.sp_hf) {
        const Real cand = static_cast<Real>(im.scores_hf[id]) + here;
        if (target.start < 0 || cand > target.score) target = {cand, static_cast<int32_t>(start), id};
      } else {
        const uint8_t t = im.types[id];
        if (t == kSpUnused) continue;
        if (t == kSpUserDefined) {
          // sentencepiece: `length * max_score_ - 0.1`, a float product then double arithmetic.
          const double cand = (static_cast<float>(length) * im.sp_max_score - 0.1) + static_cast<double>(here);
          if (target.start < 0 || cand > static_cast<double>(target.score))
            target = {static_cast<Real>(cand), static_cast<int32_t>(start), id};
        } else {
          const Real cand = static_cast<Real>(im.scores[id]) + here;
          if (target.start < 0 || cand > target.score) target = {cand, static_cast<int32_t>(start), id};
        }
      }
      if (length == mblen) single = true;
    }
    if (!single) {
      Node& target = best[start + mblen];
      const Real cand = unk_score + here;
      if (target.start < 0 || cand > target.score) target = {cand, static_cast<int32_t>(start), unk};
    }
    start += mblen;
  }
  path.clear();
  for (size_t end = n; end > 0; end = best[end].start) path.emplace_back(best[end].start, best[end].id);
  std::reverse(path.begin(), path.end());
}

}  // namespace

void Tokenizer::Impl::sp_unigram(const std::string& norm, std::vector<int32_t>& out) const {
  std::vector<std::pair<uint32_t, int32_t>> path;  // (start byte, id) of each piece
  if (sp_hf) {
    unigram_viterbi<double>(*this, norm, path);
  } else {
    unigram_viterbi<float>(*this, norm, path);
  }
  bool prev_unk = false;
  for (size_t k = 0; k < path.size(); ++k) {
    const size_t end = k + 1 < path.size() ? path[k + 1].first : norm.size();
    sp_emit(std::string_view(norm).substr(path[k].first, end - path[k].first), path[k].second, prev_unk, out);
  }
}

std::string Tokenizer::Impl::sp_decode(const std::vector<int32_t>& ids, bool strip) const {
  std::string out;
  for (int32_t id : ids) {
    if (auto it = added_by_id.find(id); it != added_by_id.end()) {
      out += added[it->second].content;
      continue;
    }
    if (const int b = sp_byte_of(id); b >= 0) {
      out += static_cast<char>(b);  // consecutive byte pieces reassemble multi-byte characters
      continue;
    }
    const std::string& p = pieces[id];
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpaceLen, kSpace) == 0) {
        out += ' ';
        i += kSpaceLen;
      } else {
        out += p[i++];
      }
    }
  }
  if (strip && sp_strip && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace edgewise
