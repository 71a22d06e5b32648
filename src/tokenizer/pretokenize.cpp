// Pre-split: text -> words before byte-level BPE, one regular expression per variant, matched
// with PCRE2 (UTF + UCP, JIT) to give the same words as HF `tokenizers` (Oniguruma):
//   GPT-2   ByteLevel(use_regex=true)
//   Llama-3 Split(Regex, Isolated) + ByteLevel(use_regex=false), numbers in runs of <= 3 digits
//   Qwen2   the same with single digits
//   SmolLM  Digits(individual_digits=true) then ByteLevel(use_regex=true): every \p{N} character
//           is a word of its own and the GPT-2 pattern runs on each stretch between them
//           separately (so "  1" gives "  ", "1": the lookahead (?!\S) sees the stretch's end).
// \s is written as \p{White_Space}: PCRE2's \s also matches U+180E, which Oniguruma (and
// Unicode since 6.3) do not count as white space.
// Text that is not valid UTF-8 is split too (PCRE2_MATCH_INVALID_UTF): invalid bytes never
// match and end up in gap words, which byte-level BPE encodes like any other bytes.
// Not here: added tokens (bpe.cpp), normalisers.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "edgewise/error.h"
#include "tokenizer_impl.h"
#include "../util/unicode.h"

namespace edgewise {

namespace {

#define EW_WS "\\p{White_Space}"
// \s -> [WS], \S -> [^WS]; otherwise the patterns are those of the HF tokenizer.json files.
const char* const kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" EW_WS "\\p{L}\\p{N}]+|[" EW_WS
    "]+(?![^" EW_WS "])|[" EW_WS "]+";
const char* const kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" EW_WS
    "\\p{L}\\p{N}]+[\\r\\n]*|[" EW_WS "]*[\\r\\n]+|[" EW_WS "]+(?![^" EW_WS "])|[" EW_WS "]+";
const char* const kQwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" EW_WS
    "\\p{L}\\p{N}]+[\\r\\n]*|[" EW_WS "]*[\\r\\n]+|[" EW_WS "]+(?![^" EW_WS "])|[" EW_WS "]+";
const char* const kDigit = "\\p{N}";
#undef EW_WS

pcre2_code* compile(const char* pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off,
                                   nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("tokenizer pre-split", "cannot compile regular expression at offset " +
                                    std::to_string(off) + ": " + reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
  return code;
}

pcre2_code* code_of(void* p) { return static_cast<pcre2_code*>(p); }

// RAII match data sized for one pattern.
struct MatchData {
  explicit MatchData(const pcre2_code* c) : md(pcre2_match_data_create_from_pattern(c, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
  pcre2_match_data* md;
};

// Finds the next match of `code` in text[start:]; returns false when there is none.
bool next_match(const pcre2_code* code, std::string_view text, size_t start, pcre2_match_data* md,
                size_t& mbeg, size_t& mend) {
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, 0,
                             md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    fail("tokenizer pre-split", std::string("regular expression match failed: ") +
                                    reinterpret_cast<char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  mbeg = ov[0];
  mend = ov[1];
  return true;
}

// Rust's char::is_alphanumeric (Alphabetic or Numeric), anchored at the start of a subject.
const pcre2_code* alnum_start() {
  static pcre2_code* c = compile("\\A[\\p{Alphabetic}\\p{N}]");
  return c;
}

// Unicode White_Space (Rust's char::is_whitespace).
bool is_white_space(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Start of the character that ends at s.size() (skips UTF-8 continuation bytes).
size_t last_char_start(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && s.size() - i < 4 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

const char* pre_split_name(PreSplit p) {
  switch (p) {
    case PreSplit::Gpt2: return "gpt2";
    case PreSplit::Llama3: return "llama3";
    case PreSplit::Qwen2: return "qwen2";
    case PreSplit::SmolLM: return "smollm";
  }
  return "?";
}

const char* PreSplitter::hf_pattern(PreSplit p) {
  switch (p) {
    case PreSplit::Gpt2:
    case PreSplit::SmolLM:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case PreSplit::Llama3:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case PreSplit::Qwen2:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  }
  return "";
}

PreSplitter::PreSplitter(PreSplit p) : pre_(p) {
  switch (p) {
    case PreSplit::Gpt2: main_ = compile(kGpt2); break;
    case PreSplit::Llama3: main_ = compile(kLlama3); break;
    case PreSplit::Qwen2: main_ = compile(kQwen2); break;
    case PreSplit::SmolLM:
      main_ = compile(kGpt2);
      digits_ = compile(kDigit);
      break;
  }
}

PreSplitter::~PreSplitter() {
  pcre2_code_free(code_of(main_));
  pcre2_code_free(code_of(digits_));  // accepts nullptr
}

void PreSplitter::split_regex(std::string_view text, std::vector<std::string_view>& out) const {
  const pcre2_code* code = code_of(main_);
  MatchData m(code);
  size_t pos = 0, mbeg = 0, mend = 0;
  while (pos < text.size() && next_match(code, text, pos, m.md, mbeg, mend)) {
    if (mbeg > pos) out.push_back(text.substr(pos, mbeg - pos));  // gap (invalid UTF-8 only)
    if (mend == mbeg) {  // no pattern here matches empty; guard against looping anyway
      pos = mbeg;
      break;
    }
    out.push_back(text.substr(mbeg, mend - mbeg));
    pos = mend;
  }
  if (pos < text.size()) out.push_back(text.substr(pos));
}

void PreSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  if (pre_ != PreSplit::SmolLM) {
    split_regex(text, out);
    return;
  }
  const pcre2_code* dig = code_of(digits_);
  MatchData m(dig);
  size_t pos = 0, mbeg = 0, mend = 0;
  while (pos < text.size() && next_match(dig, text, pos, m.md, mbeg, mend)) {
    if (mbeg > pos) split_regex(text.substr(pos, mbeg - pos), out);
    out.push_back(text.substr(mbeg, mend - mbeg));
    pos = mend;
  }
  if (pos < text.size()) split_regex(text.substr(pos), out);
}

size_t whitespace_prefix_len(std::string_view s) {
  size_t i = 0, len = 0;
  while (i < s.size() && is_white_space(unicode::utf8_next(s, i, len))) i += len;
  return i;
}

size_t whitespace_suffix_len(std::string_view s) {
  size_t end = s.size(), len = 0;
  while (end > 0) {
    const size_t b = last_char_start(s.substr(0, end));
    if (!is_white_space(unicode::utf8_next(s, b, len)) || b + len != end) break;
    end = b;
  }
  return s.size() - end;
}

bool starts_with_alnum(std::string_view s) {
  if (s.empty()) return false;
  MatchData m(alnum_start());
  size_t b = 0, e = 0;
  return next_match(alnum_start(), s.substr(0, 4), 0, m.md, b, e);
}

bool ends_with_alnum(std::string_view s) {
  if (s.empty()) return false;
  const size_t b0 = last_char_start(s);
  MatchData m(alnum_start());
  size_t b = 0, e = 0;
  return next_match(alnum_start(), s.substr(b0), 0, m.md, b, e);
}

}  // namespace edgewise
