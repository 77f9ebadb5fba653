// Text a caller sent, on its way into error messages and logs. Messages quote
// what was wrong so the caller can see it, but the text is untrusted: it can be
// huge (a 1 MB value echoed back exceeds the client's metadata limit, turning
// INVALID_ARGUMENT into RESOURCE_EXHAUSTED) and can hold terminal escapes that
// rewrite what a person sees. Every module quotes through here; it lives in
// kernel/ because every module already depends on it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace netagent::kernel {

// How much of a caller's text an error message shows.
inline constexpr size_t kQuotedBytes = 64;

// `text` with everything a terminal or a log reader could misread made
// visible: invalid UTF-8 bytes and control characters as \xNN (\n, \r, \t by
// name), C1 controls and bidi/line-separator controls as \uNNNN. Printable
// UTF-8 passes unchanged.
std::string EscapeText(absl::string_view text);

// `"text"` for an error message: escaped as above (and `"`, `\` too), at most
// `max_bytes` of the input shown, cut at a character boundary; a longer text
// ends `"... (N bytes)` so the message stays short whatever was sent.
std::string Quote(absl::string_view text, size_t max_bytes = kQuotedBytes);

// The first thing in `text` that is not printable text, for a validation
// message ("control character U+001B at byte 4", "invalid UTF-8 at byte 7");
// empty when there is none. Control characters are C0 (tab too unless
// `allow_tab`), DEL, C1, and the bidi and line-separator controls that reorder
// or split a line. An ANSI escape starts with ESC or CSI, so it is refused.
// Noncharacters (U+FFFE, U+FDD0, ...) are refused too: not text, and what is
// saved in the journal would not read back the same.
std::string FindUnprintable(absl::string_view text, bool allow_tab = false);

// The offset of the first byte of `text` that does not begin well-formed
// UTF-8 (see above: overlong forms, surrogates, beyond U+10FFFF, cut short),
// or nullopt when all of it is UTF-8. With `noncharacters`, U+FDD0..U+FDEF
// and U+nFFFE/U+nFFFF count as not UTF-8 too (a YAML writer replaces them:
// text that must read back the same cannot hold them).
std::optional<size_t> FirstInvalidUtf8(absl::string_view text, bool noncharacters = false);

}  // namespace netagent::kernel
