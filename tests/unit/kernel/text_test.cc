#include "kernel/text.h"

#include <gtest/gtest.h>

#include <string>

namespace netagent::kernel {
namespace {

using namespace std::string_literals;

TEST(Quote, ShortPrintableTextIsQuotedAsIs) {
  EXPECT_EQ(Quote("eth0"), "\"eth0\"");
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("café 10.0.0.0/8"), "\"café 10.0.0.0/8\"");
}

TEST(Quote, AMegabyteBecomesABoundedMessage) {
  const std::string big(1 << 20, 'a');
  const std::string q = Quote(big);
  EXPECT_EQ(q, "\"" + std::string(kQuotedBytes, 'a') + "\"... (1048576 bytes)");
  EXPECT_LT(q.size(), 128u);
}

TEST(Quote, CutsAtACharacterBoundary) {
  // 63 ASCII bytes then a two-byte character: the character does not fit.
  const std::string text = std::string(63, 'x') + "é" + "tail";
  EXPECT_EQ(Quote(text), "\"" + std::string(63, 'x') + "\"... (69 bytes)");
}

TEST(Quote, EscapesWhatATerminalWouldObey) {
  EXPECT_EQ(Quote("\x1b[2K\rallow 10.0.0.1"), "\"\\x1b[2K\\rallow 10.0.0.1\"");
  EXPECT_EQ(Quote("a\nb\tc\x7f"), "\"a\\nb\\tc\\x7f\"");
  EXPECT_EQ(Quote("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
  // C1 CSI (U+009B) and a right-to-left override (U+202E).
  EXPECT_EQ(Quote("\xc2\x9b"
                  "31m"),
            "\"\\u009b31m\"");
  EXPECT_EQ(Quote("abc\xe2\x80\xae"
                  "def"),
            "\"abc\\u202edef\"");
  EXPECT_EQ(Quote("nul\0byte"s), "\"nul\\x00byte\"");
}

TEST(Quote, InvalidUtf8BytesAreShownAsHex) {
  EXPECT_EQ(Quote("\xff\xfe"), "\"\\xff\\xfe\"");
  EXPECT_EQ(Quote("\xc0\xaf"), "\"\\xc0\\xaf\"");           // overlong '/'
  EXPECT_EQ(Quote("\xed\xa0\x80"), "\"\\xed\\xa0\\x80\"");  // a surrogate
  EXPECT_EQ(Quote("ab\xe2\x82"), "\"ab\\xe2\\x82\"");       // cut short
}

TEST(Quote, EscapesDoNotCountAgainstTheLimitTwice) {
  // The limit is on input bytes: 64 ESC bytes show as 64 escapes, not fewer.
  const std::string q = Quote(std::string(100, '\x1b'));
  size_t escapes = 0;
  for (size_t i = q.find("\\x1b"); i != std::string::npos; i = q.find("\\x1b", i + 1)) ++escapes;
  EXPECT_EQ(escapes, kQuotedBytes);
  EXPECT_NE(q.find("(100 bytes)"), std::string::npos);
}

TEST(EscapeText, KeepsEverythingAndLeavesQuotesAlone) {
  EXPECT_EQ(EscapeText("a \"b\" \\c"), "a \"b\" \\c");
  EXPECT_EQ(EscapeText("line\nbreak"), "line\\nbreak");
  EXPECT_EQ(EscapeText(std::string(1000, 'z')).size(), 1000u);
}

TEST(FindUnprintable, AcceptsPrintableUnicode) {
  EXPECT_EQ(FindUnprintable(""), "");
  EXPECT_EQ(FindUnprintable("blocked after incident #42 (ticket: OPS-1)"), "");
  EXPECT_EQ(FindUnprintable("Zürich 東京 ✓"), "");
}

TEST(FindUnprintable, NamesTheFirstOffenderAndWhere) {
  EXPECT_EQ(FindUnprintable("ok\x1b[2K"), "control character U+001B at byte 2");
  EXPECT_EQ(FindUnprintable("x\ty"), "control character U+0009 at byte 1");
  EXPECT_EQ(FindUnprintable("x\ty", /*allow_tab=*/true), "");
  EXPECT_EQ(FindUnprintable("del\x7f"), "control character U+007F at byte 3");
  EXPECT_EQ(FindUnprintable("c1 \xc2\x85"), "control character U+0085 at byte 3");
  EXPECT_EQ(FindUnprintable("\xe2\x80\xa8"), "control character U+2028 at byte 0");
  EXPECT_EQ(FindUnprintable("\xe2\x81\xa6isolate"), "control character U+2066 at byte 0");
  EXPECT_EQ(FindUnprintable("abc\xff"), "invalid UTF-8 at byte 3");
  EXPECT_EQ(FindUnprintable("\xf4\x90\x80\x80"), "invalid UTF-8 at byte 0");  // > U+10FFFF
  EXPECT_EQ(FindUnprintable("nul\0"s), "control character U+0000 at byte 3");
}

TEST(FindUnprintable, RefusesNoncharacters) {
  EXPECT_EQ(FindUnprintable("ticket \xef\xbf\xbe"), "noncharacter U+FFFE at byte 7");
  EXPECT_EQ(FindUnprintable("\xef\xb7\x90"), "noncharacter U+FDD0 at byte 0");
  EXPECT_EQ(FindUnprintable("\xef\xbf\xbd ok"), "");  // U+FFFD is a character
}

TEST(FirstInvalidUtf8, FindsTheFirstByteThatIsNotUtf8) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("plain\n\ttext"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FirstInvalidUtf8("a\xc3"), 1u);                // cut short
  EXPECT_EQ(FirstInvalidUtf8("a\xc0\xafz"), 1u);           // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("\xed\xa0\x80"), 0u);         // a surrogate
  EXPECT_EQ(FirstInvalidUtf8("ok \xf4\x90\x80\x80"), 3u);  // beyond U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xc3\xa9\x80"), 2u);         // a lone continuation byte
  // Noncharacters are UTF-8, but not text a YAML writer keeps.
  for (const char* nc : {"a\xef\xbf\xbe", "a\xef\xbf\xbf", "a\xef\xb7\x90", "a\xef\xb7\xaf",
                         "a\xf0\x9f\xbf\xbe", "a\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(FirstInvalidUtf8(nc), std::nullopt) << nc;
    EXPECT_EQ(FirstInvalidUtf8(nc, /*noncharacters=*/true), 1u) << nc;
  }
  EXPECT_EQ(FirstInvalidUtf8("\xef\xb7\x8f \xef\xb7\xb0 \xef\xbf\xbd", true), std::nullopt);
}

}  // namespace
}  // namespace netagent::kernel
