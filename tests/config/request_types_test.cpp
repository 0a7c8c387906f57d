#include "dsr/config/request_types.hpp"

#include "dsr/mineos/identifiers.hpp"

#include <gtest/gtest.h>

namespace dsr::mineos {
namespace {

const requests_config lists;  // the defaults of docs/contract.md §3

TEST(RequestTypes, NormalisingKeepsOnlyLettersAndDigitsInLowerCase) {
  EXPECT_EQ(normalise_right("Do Not Sell"), "donotsell");
  EXPECT_EQ(normalise_right("do-not_sell!"), "donotsell");
  EXPECT_EQ(normalise_right("DoNotMail"), "donotmail");
  EXPECT_EQ(normalise_right("Right 2 Erase"), "right2erase");
  EXPECT_EQ(normalise_right("Löschen"), "lschen");  // non-ASCII letters are not compared
}

TEST(RequestTypes, TheDocumentedDeleteRightErases) {
  EXPECT_EQ(classify({"delete", "Delete", "Delete"}, lists), route::erase);
}

TEST(RequestTypes, OptOutRightsRevokeConsent) {
  EXPECT_EQ(classify({"", "Do Not Sell", ""}, lists), route::opt_out);
  EXPECT_EQ(classify({"donotmail", "", ""}, lists), route::opt_out);
  EXPECT_EQ(classify({"", "", "DoNotSell"}, lists), route::opt_out);
  EXPECT_EQ(classify({"x-17", "Unsubscribe", "Delete"}, lists), route::opt_out);
}

TEST(RequestTypes, AnyOtherRightIsNotHandledNeverErased) {
  EXPECT_EQ(classify({"righttoedit", "Right to Edit", "Delete"}, lists), route::unhandled);
  // The right is read from requestType when it is there: request.type does not make it a delete.
  EXPECT_EQ(classify({"custom-42", "Close my account", "Delete"}, lists), route::unhandled);
  EXPECT_EQ(classify({"", "", "RightToEdit"}, lists), route::unhandled);
}

TEST(RequestTypes, NoRightAtAllIsTheDeleteUrlsOwnMeaning) {
  EXPECT_EQ(classify({"", "", ""}, lists), route::erase);
}

TEST(RequestTypes, TheIdDecidesWhenIdAndNameFallInDifferentLists) {
  EXPECT_EQ(classify({"delete", "Unsubscribe", ""}, lists), route::erase);
  EXPECT_EQ(classify({"unsubscribe", "Delete", ""}, lists), route::opt_out);
}

TEST(RequestTypes, ACompanysOwnRightsAreMappedInTheConfiguration) {
  requests_config mine;
  mine.erase_types = {"delete", "forgetme"};
  mine.opt_out_types = {"stopnewsletter"};
  EXPECT_EQ(classify({"r-9", "Forget Me", ""}, mine), route::erase);
  EXPECT_EQ(classify({"", "Stop newsletter", ""}, mine), route::opt_out);
  EXPECT_EQ(classify({"", "Do Not Sell", ""}, mine), route::unhandled);
}

TEST(RequestTypes, TheLabelAndTheMessageNameTheRightAsReceived) {
  EXPECT_EQ(right_label({"dns", "Do Not Sell", "DoNotSell"}), "Do Not Sell");
  EXPECT_EQ(right_label({"dns", "", "DoNotSell"}), "dns");
  EXPECT_EQ(right_label({"", "", "DoNotSell"}), "DoNotSell");
  EXPECT_EQ(right_label({"", "", ""}), "");
  EXPECT_EQ(unhandled_message({"rte", "Right to Edit", ""}),
            "request type \"Right to Edit\" is not handled by this integration");
}

TEST(Identifiers, TheEmailComesFirstThenTheCustomFieldsInConfigurationOrder) {
  const std::vector<custom_field_id> fields{{"$internalId", "customer_id"},
                                            {"$phonenumber", "phone"}};
  webhook w;
  w.custom_fields = {{"$phonenumber", "+420123"}, {"$internalId", "C-1042"}};
  auto id = choose_identifier(w, fields);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->name, "customer_id");  // the configuration's order, not the body's
  EXPECT_EQ(id->value, "C-1042");
  w.email = "jane@example.com";
  id = choose_identifier(w, fields);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->name, "");
  EXPECT_EQ(id->value, "jane@example.com");
  w.email.clear();
  w.custom_fields = {{"$phonenumber", "+420123"}};
  EXPECT_EQ(choose_identifier(w, fields)->name, "phone");
}

TEST(Identifiers, NoneOfThemIsMissingIdentifiers) {
  webhook w;
  w.custom_fields = {{"$shoeSize", "44"}};  // a field the configuration does not list
  EXPECT_FALSE(choose_identifier(w, std::vector<custom_field_id>{{"$internalId", "customer_id"}}));
  EXPECT_FALSE(choose_identifier(w, {}));
  EXPECT_EQ(missing_identifiers_message(std::vector<custom_field_id>{{"$internalId", "c"}}),
            "the request has no e-mail address (userInfo.email) and none of the custom fields "
            "$internalId");
}

}  // namespace
}  // namespace dsr::mineos
