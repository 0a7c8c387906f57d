#include "dsr/mineos/signature.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace dsr::mineos {
namespace {

// Computed independently: printf '%s' '{"traceId":"t"}' | openssl dgst -sha256 -hmac k -binary |
// base64
constexpr std::string_view body = R"({"traceId":"t"})";
constexpr std::string_view expected = "5z1kjzoqoIOl+FPJhJCXPzKS/oVvQtbv8ucA/EHKiek=";

TEST(Signature, IsBase64OfHmacSha256OverTheRawBody) {
  EXPECT_EQ(sign(body, "k"), expected);
}

TEST(Signature, VerifiesUnderTheRightSecretOnly) {
  const std::vector<secret> right{secret("k")};
  const std::vector<secret> wrong{secret("other")};
  EXPECT_TRUE(verify(body, expected, right));
  EXPECT_TRUE(verify(body, std::string(" ") + std::string(expected) + " ", right));
  EXPECT_FALSE(verify(body, expected, wrong));
  EXPECT_FALSE(verify(R"({"traceId":"u"})", expected, right));
  EXPECT_FALSE(verify(body, "", right));
  EXPECT_FALSE(verify(body, "not base64 at all", right));
  EXPECT_FALSE(verify(body, expected, {}));
}

TEST(Signature, AnySecretOfARotationPasses) {
  const std::vector<secret> rotation{secret("old"), secret("k"), secret("new")};
  EXPECT_TRUE(verify(body, expected, rotation));
  EXPECT_TRUE(verify(body, sign(body, "new"), rotation));
  EXPECT_FALSE(verify(body, sign(body, "retired"), rotation));
}

TEST(Signature, ReserialisedJsonDoesNotVerify) {
  const std::vector<secret> keys{secret("k")};
  EXPECT_FALSE(verify(R"({ "traceId": "t" })", expected, keys));
}

}  // namespace
}  // namespace dsr::mineos
