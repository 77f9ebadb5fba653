#include "kernel/text.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace netagent::kernel {
namespace {

// One UTF-8 sequence at `pos`: its code point and length, or length 0 when the
// bytes there are not well-formed UTF-8 (overlong forms, surrogates and values
// above U+10FFFF included).
struct Decoded {
  uint32_t cp = 0;
  size_t len = 0;
};

Decoded DecodeAt(absl::string_view s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const size_t left = s.size() - pos;
  const uint8_t c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len;
  uint32_t cp, min;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (left < len) return {};
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {};
  return {cp, len};
}

// U+FDD0..U+FDEF and the last two code points of every plane: never text.
bool IsNoncharacter(uint32_t cp) {
  return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe;
}

bool IsControl(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void AppendEscaped(uint32_t cp, std::string* out) {
  switch (cp) {
    case '\n':
      *out += "\\n";
      return;
    case '\r':
      *out += "\\r";
      return;
    case '\t':
      *out += "\\t";
      return;
  }
  if (cp < 0x80) {
    absl::StrAppendFormat(out, "\\x%02x", cp);
  } else {
    absl::StrAppendFormat(out, "\\u%04x", cp);
  }
}

// Appends text[0, limit) escaped; returns how many input bytes it consumed
// (less than `limit` only to avoid cutting a character in two).
size_t AppendText(absl::string_view text, size_t limit, bool quote_chars, std::string* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    const Decoded d = DecodeAt(text, pos);
    const size_t len = d.len ? d.len : 1;
    if (pos + len > limit) break;
    if (d.len == 0) {
      absl::StrAppendFormat(out, "\\x%02x", static_cast<uint8_t>(text[pos]));
    } else if (IsControl(d.cp)) {
      AppendEscaped(d.cp, out);
    } else if (quote_chars && (d.cp == '"' || d.cp == '\\')) {
      *out += '\\';
      *out += static_cast<char>(d.cp);
    } else {
      out->append(text.data() + pos, len);
    }
    pos += len;
  }
  return pos;
}

}  // namespace

std::string EscapeText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendText(text, text.size(), false, &out);
  return out;
}

std::string Quote(absl::string_view text, size_t max_bytes) {
  std::string out = "\"";
  const size_t shown = AppendText(text, max_bytes, true, &out);
  out += '"';
  if (shown < text.size()) absl::StrAppend(&out, "... (", text.size(), " bytes)");
  return out;
}

std::string FindUnprintable(absl::string_view text, bool allow_tab) {
  size_t pos = 0;
  while (pos < text.size()) {
    const Decoded d = DecodeAt(text, pos);
    if (d.len == 0) return absl::StrCat("invalid UTF-8 at byte ", pos);
    if (IsControl(d.cp) && !(allow_tab && d.cp == '\t')) {
      return absl::StrFormat("control character U+%04X at byte %d", d.cp, pos);
    }
    if (IsNoncharacter(d.cp)) return absl::StrFormat("noncharacter U+%04X at byte %d", d.cp, pos);
    pos += d.len;
  }
  return "";
}

std::optional<size_t> FirstInvalidUtf8(absl::string_view text, bool noncharacters) {
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Decoded d = DecodeAt(text, pos);
    if (d.len == 0) return pos;
    if (noncharacters && IsNoncharacter(d.cp)) {
      return pos;
    }
    pos += d.len;
  }
  return std::nullopt;
}

}  // namespace netagent::kernel
