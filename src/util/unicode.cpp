// UTF-8 encoding/decoding and GPT-2's byte-level character table (see unicode.h).
// Not here: Unicode character properties; the tokenizer's pre-split uses PCRE2 for those.
#include "unicode.h"

namespace edgewise::unicode {

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int32_t utf8_next(std::string_view s, size_t i, size_t& len) {
  len = 1;
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return b0;
  size_t n;
  uint32_t cp, min;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (i + n > s.size()) return -1;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  len = n;
  return static_cast<int32_t>(cp);
}

size_t utf8_invalid_at(std::string_view s) {
  size_t i = 0, len = 0;
  while (i < s.size()) {
    if (utf8_next(s, i, len) < 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

static ByteLevelTable make_table() {
  ByteLevelTable t;
  t.char_to_byte.fill(-1);
  // Printable Latin-1 bytes map to themselves; the other 68 bytes to 256, 257, ... in order.
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
    utf8_append(t.byte_to_char[b], cp);
    t.char_to_byte[cp] = static_cast<int16_t>(b);
  }
  return t;
}

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = make_table();
  return table;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = byte_level_table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.byte_to_char[static_cast<uint8_t>(c)];
  return out;
}

bool byte_level_to_bytes(std::string_view text, std::string& out) {
  const auto& t = byte_level_table();
  size_t i = 0, len = 0;
  while (i < text.size()) {
    const int32_t cp = utf8_next(text, i, len);
    if (cp < 0 || cp >= 512 || t.char_to_byte[cp] < 0) return false;
    out += static_cast<char>(t.char_to_byte[cp]);
    i += len;
  }
  return true;
}

}  // namespace edgewise::unicode
