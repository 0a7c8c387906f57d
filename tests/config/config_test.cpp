#include "dsr/config/config.hpp"

#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace dsr {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string error_of(std::string_view text) {
  try {
    parse_config(text, "/etc/dsr.toml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Config, EmptyFileGivesTheDocumentedDefaults) {
  const auto c = parse_config("", "x.toml");
  EXPECT_EQ(c.server.listen, (endpoint{"127.0.0.1", 8080}));
  EXPECT_FALSE(c.server.admin_listen);
  EXPECT_EQ(c.server.max_body_bytes, 1048576u);
  EXPECT_EQ(c.server.max_connections, 1024u);
  EXPECT_EQ(c.server.max_connections_per_client, 256u);
  EXPECT_EQ(c.server.max_queued_jobs, 1000000u);
  EXPECT_EQ(c.server.first_byte_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.store.path, "/var/lib/dsr-connector/dsr.sqlite3");
  EXPECT_EQ(c.store.retention_days, 730u);
  EXPECT_EQ(c.exponea.base_url, "https://api.exponea.com");
  EXPECT_EQ(c.exponea.max_requests_per_second, 50u);
  EXPECT_EQ(c.exponea.timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.retry.max_attempts, 12u);
  EXPECT_EQ(c.retry.initial_backoff, std::chrono::milliseconds(1000));
  EXPECT_EQ(c.jobs.concurrency, 4u);
  EXPECT_EQ(c.jobs.deadline_days, 30u);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, log_format::text);
}

// The example file documents every key with its default: loading it must give exactly what an
// empty file gives (apart from the source name).
TEST(Config, ExampleFileHoldsEveryDefault) {
  const auto example = load_config(DSR_SOURCE_DIR "/config/dsr-connector.example.toml");
  const auto defaults = parse_config("", "x");
  EXPECT_EQ(example.server.listen, defaults.server.listen);
  EXPECT_EQ(example.server.admin_listen, defaults.server.admin_listen);
  EXPECT_EQ(example.server.max_body_bytes, defaults.server.max_body_bytes);
  EXPECT_EQ(example.server.max_connections, defaults.server.max_connections);
  EXPECT_EQ(example.server.max_connections_per_client, defaults.server.max_connections_per_client);
  EXPECT_EQ(example.server.first_byte_timeout, defaults.server.first_byte_timeout);
  EXPECT_EQ(example.server.read_timeout, defaults.server.read_timeout);
  EXPECT_EQ(example.server.idle_timeout, defaults.server.idle_timeout);
  EXPECT_EQ(example.server.io_threads, defaults.server.io_threads);
  EXPECT_EQ(example.store.path, defaults.store.path);
  EXPECT_EQ(example.store.export_retention_days, defaults.store.export_retention_days);
  EXPECT_EQ(example.exponea.base_url, defaults.exponea.base_url);
  EXPECT_EQ(example.exponea.customer_id_type, defaults.exponea.customer_id_type);
  EXPECT_EQ(example.exponea.verify_timeout, defaults.exponea.verify_timeout);
  EXPECT_EQ(example.exponea.max_export_bytes, defaults.exponea.max_export_bytes);
  EXPECT_EQ(example.exponea.custom_field_ids, defaults.exponea.custom_field_ids);
  EXPECT_EQ(example.mineos, defaults.mineos);
  EXPECT_EQ(example.requests, defaults.requests);
  EXPECT_EQ(example.consent, defaults.consent);
  EXPECT_EQ(example.retry.max_backoff, defaults.retry.max_backoff);
  EXPECT_EQ(example.retry.pause_probe, defaults.retry.pause_probe);
  EXPECT_EQ(example.jobs.shutdown_grace, defaults.jobs.shutdown_grace);
  EXPECT_EQ(example.jobs.deadline_warning_days, defaults.jobs.deadline_warning_days);
  EXPECT_EQ(example.log.format, defaults.log.format);
  EXPECT_TRUE(example.credentials.inline_values.empty());
}

// Every key the loader knows appears in the example file (so the example documents every key).
TEST(Config, ExampleFileNamesEveryKey) {
  std::ifstream in(DSR_SOURCE_DIR "/config/dsr-connector.example.toml");
  std::stringstream text;
  text << in.rdbuf();
  for (const char* key : {"listen",
                          "admin_listen",
                          "max_body_bytes",
                          "max_connections",
                          "max_connections_per_client",
                          "max_queued_jobs",
                          "tls_cert_file",
                          "tls_key_file",
                          "first_byte_timeout_seconds",
                          "read_timeout_seconds",
                          "idle_timeout_seconds",
                          "io_threads",
                          "path",
                          "retention_days",
                          "export_retention_days",
                          "base_url",
                          "customer_id_type",
                          "lowercase_ids",
                          "event_type",
                          "source",
                          "max_requests_per_second",
                          "timeout_seconds",
                          "ca_file",
                          "verify_timeout_seconds",
                          "max_export_bytes",
                          "custom_field_ids",
                          "api_base_url",
                          "integration_id",
                          "public_url",
                          "inline_data_max_bytes",
                          "file_link_ttl_hours",
                          "max_requests_per_minute",
                          "erase_types",
                          "opt_out_types",
                          "categories",
                          "max_attempts",
                          "initial_backoff_ms",
                          "max_backoff_seconds",
                          "pause_probe_seconds",
                          "concurrency",
                          "shutdown_grace_seconds",
                          "deadline_days",
                          "deadline_warning_days",
                          "level",
                          "format"}) {
    EXPECT_THAT(text.str(), HasSubstr(std::string("\n") + key + " = ")) << key;
  }
}

TEST(Config, ReadsEveryTypeOfValue) {
  const auto c = parse_config(R"(
[server]
listen = "0.0.0.0:9000"
admin_listen = "[::1]:9001"
max_body_bytes = 65536
max_connections_per_client = 0
first_byte_timeout_seconds = 2
[exponea]
base_url = "http://127.0.0.1:8090"
lowercase_ids = false
timeout_seconds = 5
[mineos]
api_base_url = "https://api.us.portal.saymine.com/"
integration_id = "int-42"
public_url = "https://dsr.example.com"
[requests]
erase_types = ["Delete", "Right to be Forgotten"]
opt_out_types = ["Do Not Sell", "unsubscribe"]
[consent]
categories = ["marketing"]
[log]
format = "json"
[credentials]
admin_token = "inline"
store_key_file = "keys/store"
)",
                              "x", "/etc/dsr");
  EXPECT_EQ(c.server.listen, (endpoint{"0.0.0.0", 9000}));
  EXPECT_EQ(c.server.admin_listen, (endpoint{"::1", 9001}));
  EXPECT_EQ(c.server.admin_listen->to_string(), "[::1]:9001");
  EXPECT_EQ(c.server.max_body_bytes, 65536u);
  EXPECT_EQ(c.server.max_connections_per_client, 0u);  // 0 = no cap is a valid value
  EXPECT_EQ(c.server.first_byte_timeout, std::chrono::seconds(2));
  EXPECT_FALSE(c.exponea.lowercase_ids);
  EXPECT_EQ(c.exponea.timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.log.format, log_format::json);
  EXPECT_EQ(c.mineos.api_base_url, "https://api.us.portal.saymine.com");  // no trailing slash
  EXPECT_EQ(c.mineos.integration_id, "int-42");
  EXPECT_TRUE(c.mineos.reporting());
  // Rights are kept normalised: letters and digits, lower case.
  EXPECT_EQ(c.requests.erase_types, (std::vector<std::string>{"delete", "righttobeforgotten"}));
  EXPECT_EQ(c.requests.opt_out_types, (std::vector<std::string>{"donotsell", "unsubscribe"}));
  EXPECT_EQ(c.consent.categories, (std::vector<std::string>{"marketing"}));
  EXPECT_EQ(c.credentials.inline_values.at("admin_token"), "inline");
  EXPECT_EQ(c.credentials.files.at("store_key"), "/etc/dsr/keys/store");
}

TEST(Config, RelativeStorePathIsResolvedAgainstTheFilesDirectory) {
  test::temp_dir dir;
  const auto file = dir.write("dsr.toml", "[store]\npath = \"state/dsr.sqlite3\"\n");
  EXPECT_EQ(load_config(file).store.path, dir.path() / "state/dsr.sqlite3");
}

TEST(Config, UnknownKeyNamesFileSectionAndKey) {
  EXPECT_THAT(error_of("[server]\nlisten = \"127.0.0.1:1\"\nmax_conections = 5\n"),
              AllOf(HasSubstr("/etc/dsr.toml"), HasSubstr("[server] max_conections"),
                    HasSubstr("unknown key"), HasSubstr("line 3")));
  EXPECT_THAT(error_of("[sever]\n"),
              AllOf(HasSubstr("/etc/dsr.toml"), HasSubstr("sever"), HasSubstr("unknown")));
  EXPECT_THAT(error_of("[credentials]\nexponea_key = \"x\"\n"),
              AllOf(HasSubstr("[credentials] exponea_key"), HasSubstr("unknown key")));
}

TEST(Config, WrongTypeNamesTheExpectedType) {
  EXPECT_THAT(error_of("[server]\nmax_body_bytes = \"big\"\n"),
              AllOf(HasSubstr("[server] max_body_bytes"), HasSubstr("expected an integer"),
                    HasSubstr("a string")));
  EXPECT_THAT(error_of("[exponea]\nlowercase_ids = 1\n"),
              AllOf(HasSubstr("[exponea] lowercase_ids"), HasSubstr("true or false")));
  EXPECT_THAT(error_of("server = 3\n"), HasSubstr("expected a [server] table"));
}

TEST(Config, InvalidValuesAreRefusedWithTheProblem) {
  EXPECT_THAT(error_of("[server]\nlisten = \"127.0.0.1:70000\"\n"),
              AllOf(HasSubstr("[server] listen"), HasSubstr("70000 is out of range")));
  EXPECT_THAT(error_of("[server]\nlisten = \"127.0.0.1\"\n"), HasSubstr("has no port"));
  EXPECT_THAT(error_of("[exponea]\nbase_url = \"http://api.exponea.com\"\n"),
              AllOf(HasSubstr("[exponea] base_url"), HasSubstr("only for loopback"),
                    HasSubstr("api.exponea.com")));
  EXPECT_THAT(error_of("[mineos]\napi_base_url = \"http://10.0.0.1\"\n"),
              HasSubstr("[mineos] api_base_url"));
  EXPECT_THAT(error_of("[mineos]\npublic_url = \"http://dsr.example.com\"\n"),
              AllOf(HasSubstr("[mineos] public_url"), HasSubstr("only for loopback")));
  EXPECT_THAT(error_of("[mineos]\nintegration_id = \"a/b\"\n"),
              AllOf(HasSubstr("[mineos] integration_id"), HasSubstr("A-Z a-z 0-9")));
  EXPECT_THAT(error_of("[requests]\nopt_out_types = [\"delete\"]\n"),
              AllOf(HasSubstr("[requests] opt_out_types"), HasSubstr("also in erase_types")));
  EXPECT_THAT(error_of("[requests]\nerase_types = [\"--\"]\n"),
              AllOf(HasSubstr("[requests] erase_types"), HasSubstr("no letter or digit")));
  EXPECT_THAT(error_of("[consent]\ncategories = \"marketing\"\n"),
              AllOf(HasSubstr("[consent] categories"), HasSubstr("array of strings")));
  EXPECT_THAT(error_of("[exponea]\ncustom_field_ids = [{field = \"$internalId\"}]\n"),
              AllOf(HasSubstr("[exponea] custom_field_ids"), HasSubstr("field =")));
  EXPECT_THAT(error_of("[exponea]\nbase_url = \"ftp://x\"\n"), HasSubstr("scheme 'ftp'"));
  EXPECT_THAT(error_of("[server]\nmax_queued_jobs = -1\n"),
              AllOf(HasSubstr("[server] max_queued_jobs"), HasSubstr("-1 is out of range")));
  EXPECT_THAT(error_of("[retry]\nmax_attempts = 0\n"), HasSubstr("[retry] max_attempts"));
  EXPECT_THAT(error_of("[server]\nfirst_byte_timeout_seconds = 0\n"),
              AllOf(HasSubstr("[server] first_byte_timeout_seconds"), HasSubstr("out of range")));
  EXPECT_THAT(error_of("[server]\nmax_connections_per_client = -1\n"),
              AllOf(HasSubstr("[server] max_connections_per_client"), HasSubstr("out of range")));
  EXPECT_THAT(error_of("[log]\nlevel = \"verbose\"\n"), HasSubstr("not one of trace"));
  EXPECT_THAT(error_of("[server]\ntls_cert_file = \"/c.pem\"\n"), HasSubstr("go together"));
  EXPECT_THAT(error_of("[server\n"), AllOf(HasSubstr("/etc/dsr.toml"), HasSubstr("invalid TOML")));
}

// The guessed endpoint of earlier versions: refused with the way to migrate, never ignored (an
// upgrade that silently stopped reporting would be found weeks later).
TEST(Config, StatusUrlIsRefusedPointingAtApiBaseUrl) {
  EXPECT_THAT(error_of("[mineos]\nstatus_url = \"https://mineos.example/status\"\n"),
              AllOf(HasSubstr("[mineos] status_url"), HasSubstr("api_base_url"),
                    HasSubstr("https://api.portal.saymine.com")));
}

TEST(Config, CustomFieldIdsAreReadInOrder) {
  const auto c = parse_config(R"([exponea]
custom_field_ids = [{field = "$internalId", id = "customer_id"}, {field = "$phonenumber", id = "phone"}]
)",
                              "x");
  ASSERT_EQ(c.exponea.custom_field_ids.size(), 2u);
  EXPECT_EQ(c.exponea.custom_field_ids[0], (custom_field_id{"$internalId", "customer_id"}));
  EXPECT_EQ(c.exponea.custom_field_ids[1], (custom_field_id{"$phonenumber", "phone"}));
}

TEST(Config, PlainHttpIsAllowedForLoopbackHosts) {
  for (const char* url : {"http://127.0.0.1:8090", "http://localhost:1", "http://[::1]:8090"}) {
    EXPECT_EQ(
        parse_config(std::string("[exponea]\nbase_url = \"") + url + "\"\n", "x").exponea.base_url,
        url);
  }
}

// The parser's message may quote the text it choked on: never for a credential's line.
TEST(Config, ATomlErrorInACredentialNeverEchoesItsValue) {
  for (const char* text : {"[credentials]\nadmin_token = \"abc\\qSECRET-VALUE\"\n",
                           "[credentials]\nadmin_token = \"SECRET-VALUE\n",
                           "[credentials]\nadmin_token = SECRET-VALUE\n",
                           "[log]\nlevel = \"info\"\n[credentials]\nstore_key = 'SECRET-VALUE\n",
                           "admin_token = \"x\\qSECRET-VALUE\"\n"}) {
    const auto e = error_of(text);
    EXPECT_THAT(e, HasSubstr("invalid TOML")) << text;
    EXPECT_THAT(e, Not(HasSubstr("SECRET"))) << e;
  }
  // Elsewhere the parser's own message helps and is kept.
  EXPECT_THAT(error_of("[log]\nlevel = \"info\\q\"\n"), HasSubstr("escape"));
}

// A name that merely looks like a loopback address would receive the key and secret in clear.
TEST(Config, AHostNameStartingWith127IsNoLoopback) {
  EXPECT_THAT(error_of("[exponea]\nbase_url = \"http://127.evil.example.com\"\n"),
              AllOf(HasSubstr("[exponea] base_url"), HasSubstr("only for loopback")));
  EXPECT_THAT(error_of("[mineos]\napi_base_url = \"http://127.0.0.1.nip.io\"\n"),
              AllOf(HasSubstr("[mineos] api_base_url"), HasSubstr("not what it seems")));
  EXPECT_FALSE(is_loopback_host("127.evil.example.com"));
  EXPECT_FALSE(is_loopback_host("[::2]"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("[::1]"));
  EXPECT_TRUE(is_loopback_host("localhost"));
}

TEST(Config, ThePostgresqlEngineNeedsAUrlWithoutAPasswordAndALeaseLongerThanACall) {
  const auto pg = parse_config(
      "[store]\nengine = \"postgresql\"\nurl = \"postgresql://dsr@db/dsr?sslmode=verify-full\"\n"
      "[jobs]\nworker_name = \"host-a\"\n",
      "x.toml");
  EXPECT_EQ(pg.store.engine, store_engine_kind::postgresql);
  EXPECT_EQ(pg.store.url, "postgresql://dsr@db/dsr?sslmode=verify-full");
  EXPECT_EQ(pg.jobs.lease, std::chrono::seconds(60));
  EXPECT_EQ(pg.jobs.worker_name, "host-a");
  EXPECT_EQ(parse_config("", "x.toml").store.engine, store_engine_kind::sqlite);
  EXPECT_THAT(error_of("[store]\nengine = \"mysql\"\n"),
              HasSubstr("[store] engine: 'mysql' is not one of sqlite, postgresql"));
  EXPECT_THAT(error_of("[store]\nengine = \"postgresql\"\n"),
              HasSubstr("[store] url: engine = \"postgresql\" needs"));
  // A password in the URL, in any of libpq's forms, is refused and never printed.
  for (const char* url : {"postgresql://dsr:S3cretPw@db/dsr", "postgres://dsr:S3cretPw@db:5432/dsr",
                          "postgresql://dsr@db/dsr?sslmode=require&password=S3cretPw",
                          "host=db user=dsr password=S3cretPw", "password = S3cretPw host=db",
                          "host=db sslpassword=S3cretPw", "postgresql:///dsr?sslpassword=S3cretPw"}) {
    const auto e = error_of(std::string("[store]\nengine = \"postgresql\"\nurl = \"") + url +
                            "\"\n");
    EXPECT_THAT(e, AllOf(HasSubstr("[store] url: holds a password"), HasSubstr("store_password"),
                         Not(HasSubstr("S3cretPw"))))
        << url;
  }
  // A value that merely says "password" is none.
  EXPECT_NO_THROW(parse_config("[store]\nengine = \"postgresql\"\nurl = \"host=db "
                               "application_name='password=x' dbname=password\"\n",
                               "x.toml"));
  EXPECT_THAT(error_of("[store]\nengine = \"postgresql\"\nurl = \"postgresql:///dsr\"\n"
                       "[exponea]\ntimeout_seconds = 60\n"),
              AllOf(HasSubstr("[jobs] lease_seconds: 60 must be greater than [exponea] "
                              "timeout_seconds (60)"),
                    HasSubstr("at least 61")));
  // SQLite's single daemon takes no job over: the rule is PostgreSQL's.
  EXPECT_NO_THROW(parse_config("[exponea]\ntimeout_seconds = 60\n", "x.toml"));
}

TEST(Config, MissingFileIsAConfigError) {
  EXPECT_THROW(load_config("/nonexistent/dsr.toml"), config_error);
}

}  // namespace
}  // namespace dsr
