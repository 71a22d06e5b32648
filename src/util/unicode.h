// UTF-8 helpers and the GPT-2 byte <-> character table used by byte-level BPE.
// Private to the library (src/): the tokenizer and a few error messages use it.
// Not here: normalisation (NFC/NFD), case folding, Unicode property tables (PCRE2 has those).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace edgewise::unicode {

/// Appends the UTF-8 encoding of code point `cp` (must be <= 0x10FFFF) to `out`.
void utf8_append(std::string& out, uint32_t cp);

/// Decodes one code point starting at s[i]; sets `len` to its byte length. Returns -1 (and
/// len = 1) for a byte that does not start a valid, shortest-form sequence.
int32_t utf8_next(std::string_view s, size_t i, size_t& len);

/// Byte offset of the first invalid UTF-8 sequence in `s`, or std::string_view::npos.
size_t utf8_invalid_at(std::string_view s);

/// GPT-2's bytes_to_unicode(): every byte maps to one printable character (e.g. ' ' -> 'Ġ',
/// '\n' -> 'Ċ'); byte-level BPE vocabularies are written in these characters.
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_char;  ///< UTF-8 of the character for each byte
  std::array<int16_t, 512> char_to_byte;      ///< code point (< 512) -> byte, -1 if none
};
const ByteLevelTable& byte_level_table();

/// The byte-level spelling of raw bytes (" the" -> "Ġthe").
std::string bytes_to_byte_level(std::string_view bytes);

/// Raw bytes of a byte-level spelling ("Ġthe" -> " the"). Returns false (and leaves `out`
/// in an unspecified state) when some character is not in the table.
bool byte_level_to_bytes(std::string_view text, std::string& out);

}  // namespace edgewise::unicode
