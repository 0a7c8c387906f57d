#include "dsr/http/router.hpp"

#include <gtest/gtest.h>

namespace dsr::http {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    r_.add("POST", "/v1/mineos/delete", route_scope::webhook, reply("delete"));
    r_.add("GET", "/healthz", route_scope::both, reply("health"));
    r_.add("GET", "/v1/requests/{id}", route_scope::operator_api,
           [](request&, const route_params& p, responder done) {
             done(response{200, "text/plain", "job " + p.at("id"), {}});
           });
    r_.add("POST", "/v1/requests/{id}/retry", route_scope::operator_api, reply("retry"));
  }
  static route_fn reply(std::string body) {
    return [body](request&, const route_params&, responder done) {
      done(response{200, "text/plain", body, {}});
    };
  }
  response call(std::string method, std::string target, listener on = listener::public_,
                bool shared = true) {
    request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.on = on;
    req.admin_shared = shared;
    response out;
    r_.handle(std::move(req), [&](response res) { out = std::move(res); });
    return out;
  }
  router r_;
};

TEST_F(RouterTest, MatchesLiteralAndParameterSegments) {
  EXPECT_EQ(call("POST", "/v1/mineos/delete").body, "delete");
  EXPECT_EQ(call("GET", "/v1/requests/abc-123?x=1").body, "job abc-123");
  EXPECT_EQ(call("POST", "/v1/requests/abc/retry").body, "retry");
}

// A request id with a space or a slash reaches its job: the CLI encodes it, the router decodes.
TEST_F(RouterTest, ParameterSegmentsArePercentDecoded) {
  EXPECT_EQ(call("GET", "/v1/requests/ab%20cd").body, "job ab cd");
  EXPECT_EQ(call("GET", "/v1/requests/caf%C3%A9").body, "job caf\xC3\xA9");
  EXPECT_EQ(call("GET", "/v1/requests/100%25").body, "job 100%");
  EXPECT_EQ(call("GET", "/v1/requests/a%2Fb").body, "job a/b");  // one segment, not two
  for (const char* bad : {"/v1/requests/ab%2", "/v1/requests/ab%zz", "/v1/requests/a%00b"}) {
    EXPECT_EQ(call("GET", bad).status, 400u) << bad;
  }
}

TEST_F(RouterTest, UnknownPathIs404ProblemJson) {
  for (const char* t : {"/nope", "/v1/mineos/delete/extra", "/v1/requests/", "", "*"}) {
    const auto res = call("GET", t);
    EXPECT_EQ(res.status, 404u) << t;
    EXPECT_EQ(res.content_type, "application/problem+json");
  }
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  const auto res = call("GET", "/v1/mineos/delete");
  EXPECT_EQ(res.status, 405u);
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0].name, "Allow");
  EXPECT_EQ(res.headers[0].value, "POST");
}

TEST_F(RouterTest, WithASeparateAdminListenerEachPathLivesOnItsOwnListener) {
  EXPECT_EQ(call("GET", "/v1/requests/a", listener::public_, false).status, 404u);
  EXPECT_EQ(call("GET", "/v1/requests/a", listener::admin, false).status, 200u);
  EXPECT_EQ(call("POST", "/v1/mineos/delete", listener::admin, false).status, 404u);
  EXPECT_EQ(call("GET", "/healthz", listener::admin, false).status, 200u);
  EXPECT_EQ(call("GET", "/healthz", listener::public_, false).status, 200u);
  // Without one, operator paths are served on `listen`.
  EXPECT_EQ(call("GET", "/v1/requests/a", listener::public_, true).status, 200u);
}

TEST(Request, QueryParametersArePercentDecoded) {
  request req;
  req.target = "/v1/requests?state=failed&limit=5&x=a%20b";
  EXPECT_EQ(req.path(), "/v1/requests");
  EXPECT_EQ(req.query_param("state"), "failed");
  EXPECT_EQ(req.query_param("limit"), "5");
  EXPECT_EQ(req.query_param("x"), "a b");
  EXPECT_FALSE(req.query_param("missing"));
}

}  // namespace
}  // namespace dsr::http
