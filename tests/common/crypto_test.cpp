#include "dsr/common/crypto.hpp"

#include <gtest/gtest.h>

namespace dsr::crypto {
namespace {

TEST(Crypto, HmacSha256MatchesRfc4231TestCase2) {
  const auto mac = hmac_sha256("Jefe", "what do ya want for nothing?");
  static const unsigned char expected[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                           0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                           0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                           0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  EXPECT_EQ(mac, std::string(reinterpret_cast<const char*>(expected), sizeof expected));
}

TEST(Crypto, Base64UsesTheStandardPaddedAlphabet) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
}

TEST(Crypto, ConstantTimeEqualComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("token", "token"));
  EXPECT_FALSE(constant_time_equal("token", "tokem"));
  EXPECT_FALSE(constant_time_equal("token", "token2"));
  EXPECT_FALSE(constant_time_equal("", "x"));
}

TEST(Crypto, SealedBytesOpenOnlyWithTheSameKeyAndAad) {
  const std::string key(32, 'k');
  const auto sealed = seal(key, "jane@example.com", "req-1");
  EXPECT_EQ(sealed.find("jane"), std::string::npos);
  EXPECT_EQ(sealed.size(), 12u + 16u + 16u);  // nonce, ciphertext, tag
  EXPECT_EQ(open(key, sealed, "req-1"), "jane@example.com");
  EXPECT_NE(seal(key, "jane@example.com", "req-1"), sealed);             // a fresh nonce each time
  EXPECT_EQ(open(std::string(32, 'x'), sealed, "req-1"), std::nullopt);  // another key
  EXPECT_EQ(open(key, sealed, "req-2"), std::nullopt);                   // moved to another row
  auto altered = sealed;
  altered[14] ^= 1;
  EXPECT_EQ(open(key, altered, "req-1"), std::nullopt);
  EXPECT_EQ(open(key, "short", "req-1"), std::nullopt);
  EXPECT_EQ(open(key, seal(key, "", ""), ""), "");
}

TEST(Crypto, HexRoundTrips) {
  EXPECT_EQ(to_hex(std::string("\x00\x1f\xab", 3)), "001fab");
  EXPECT_EQ(from_hex("001FaB"), std::string("\x00\x1f\xab", 3));
  EXPECT_EQ(from_hex("abc"), std::nullopt);
  EXPECT_EQ(from_hex("zz"), std::nullopt);
}

}  // namespace
}  // namespace dsr::crypto
