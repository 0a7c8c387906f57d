#include "dsr/common/text.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace dsr {
namespace {

TEST(CleanText, CutsATwoByteCharacterThatCrossesTheLimitWhole) {
  const std::string text = std::string(299, 'a') + "\xC3\xA9";  // 299 ASCII + "é" = 301 bytes
  const auto out = clean_text(text, 300);
  EXPECT_EQ(out, std::string(299, 'a'));
  EXPECT_NO_THROW((void)nlohmann::json(out).dump());
  EXPECT_EQ(clean_text(std::string(298, 'a') + "\xC3\xA9", 300),
            std::string(298, 'a') + "\xC3\xA9");
}

TEST(CleanText, CutsFourByteCharactersOnTheirBoundary) {
  const std::string smiley = "\xF0\x9F\x98\x80";
  EXPECT_EQ(clean_text("ab" + smiley, 5), "ab");
  EXPECT_EQ(clean_text("ab" + smiley, 6), "ab" + smiley);
}

TEST(CleanText, ReplacesControlCharactersAndEscapeSequencesWithSpaces) {
  // An OSC 8 hyperlink and an SGR colour: the ESC and BEL go, so no terminal acts on them.
  const auto out = clean_text("\x1b]8;;http://evil\x07link\x1b]8;;\x07 \x1b[31mred\x1b[0m");
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('\x07'), std::string::npos);
  EXPECT_EQ(clean_text("a\nb\rc\x7f"
                       "d\te"),
            "a b c d\te");
  EXPECT_EQ(clean_text("x\xC2\x85y\xC2\x9Bz"), "x y z");  // C1: NEL and CSI
  EXPECT_EQ(clean_text("\xC2\xA0"), "\xC2\xA0");          // U+00A0 is not a control character
}

TEST(CleanText, ReplacesInvalidUtf8WithTheReplacementCharacter) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(clean_text("a\xFF"
                       "b"),
            "a" + fffd + "b");
  EXPECT_EQ(clean_text("a\xC3"), "a" + fffd);  // truncated sequence
  EXPECT_EQ(clean_text("\xC0\xAF"), fffd);     // overlong '/'
  EXPECT_EQ(clean_text("\xED\xA0\x80"
                       "x"),
            fffd + "x");                            // a surrogate
  EXPECT_EQ(clean_text("\xF4\x90\x80\x80"), fffd);  // above U+10FFFF
  EXPECT_TRUE(is_valid_utf8(clean_text("\xE2\x82 \xF0\x9F\x98")));
}

TEST(CleanText, TrimsAndKeepsOrdinaryText) {
  EXPECT_EQ(clean_text("  No permission to anonymize customers \n"),
            "No permission to anonymize customers");
  EXPECT_EQ(clean_text("caf\xC3\xA9 \xE2\x82\xAC"), "caf\xC3\xA9 \xE2\x82\xAC");
  EXPECT_EQ(clean_text(""), "");
}

TEST(CutUtf8, NeverEndsInsideACharacter) {
  const std::string s = "\xC3\xA9\xC3\xA9";
  EXPECT_EQ(cut_utf8(s, 3), "\xC3\xA9");
  EXPECT_EQ(cut_utf8(s, 4), s);
  EXPECT_EQ(cut_utf8(s, 1), "");
}

}  // namespace
}  // namespace dsr
