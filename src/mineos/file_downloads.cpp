#include "dsr/mineos/file_downloads.hpp"

#include "dsr/common/log.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/kept_exports.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>

namespace dsr::mineos {
namespace {

namespace asio = boost::asio;

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("mineos");
  return logger;
}

http::response gone() {
  return http::problem(410, "this link has expired and its export is deleted; ask for a new copy");
}

}  // namespace

file_downloads::file_downloads(async_store& store, std::shared_ptr<const file_links> links,
                               std::filesystem::path export_dir,
                               std::vector<std::string> export_keys, std::shared_ptr<clock> clock,
                               bool exports_in_store)
    : store_(store),
      links_(std::move(links)),
      export_dir_(std::move(export_dir)),
      export_keys_(std::move(export_keys)),
      clock_(std::move(clock)),
      exports_in_store_(exports_in_store) {}

void file_downloads::add_routes(http::router& r) {
  r.add("GET", "/v1/files/{id}", http::route_scope::webhook,
        [this](http::request& req, const http::route_params& p, http::responder done) {
          handle(req, p.at("id"), std::move(done));
        });
}

void file_downloads::handle(const http::request& req, const std::string& request_id,
                            http::responder done) {
  const auto expires = req.query_param("expires");
  const auto sig = req.query_param("sig");
  const auto now = clock_->now();
  const auto verdict = expires && sig ? links_->check(request_id, *expires, *sig, now)
                                      : file_links::verdict::bad_signature;
  if (verdict == file_links::verdict::bad_signature) {
    log()->warn("refused a file download from {}: the link's signature does not match", req.remote);
    done(http::problem(403, "this link is not valid (its signature does not match)"));
    return;
  }
  asio::co_spawn(store_.executor(), serve(request_id, verdict, now, req.remote, std::move(done)),
                 log_if_thrown("mineos", "a file download"));
}

asio::awaitable<void> file_downloads::serve(std::string request_id, file_links::verdict verdict,
                                            time_point now, std::string remote,
                                            http::responder done) {
  auto found = co_await store_.find(request_id);
  if (!found) {
    log()->error("[R {}] cannot serve a file download: {}", request_id, found.error().detail);
    done(http::problem(503, "the job store cannot be read right now; retry later",
                       {{"Retry-After", "5"}}));
    co_return;
  }
  if (!*found || (*found)->op != operation::copy) {
    done(gone());  // signed, so it existed: purged since
    co_return;
  }
  const auto& j = **found;
  if (verdict == file_links::verdict::expired) {
    // Only the recorded expiry of an acknowledged report deletes: an older link to an export
    // whose current link lives on, or whose report still waits to be re-sent with a new link,
    // is refused and the export kept.
    if (j.reported && j.file_link_expires_at && *j.file_link_expires_at <= now) {
      if (exports_in_store_) {
        const std::vector<std::int64_t> expired{j.id};
        if (auto n = co_await store_.delete_exports(expired); n && *n > 0) {
          log()->info("[R {}] file link expired: export deleted", request_id);
        }
      } else {
        std::error_code ec;
        if (std::filesystem::remove(export_path(export_dir_, j.id), ec)) {
          log()->info("[R {}] file link expired: export deleted", request_id);
        }
      }
    }
    done(gone());
    co_return;
  }
  auto file = co_await locate_export(store_, export_dir_, j.id, exports_in_store_);
  if (!file) {
    log()->error("[R {}] cannot serve a file download: {}", request_id, file.error().detail);
    done(http::problem(503, "the job store cannot be read right now; retry later",
                       {{"Retry-After", "5"}}));
    co_return;
  }
  auto source = http::sealed_file_source(file->path, export_keys_, request_id);
  drop_scratch(*file);
  if (!source) {
    done(gone());
    co_return;
  }
  log()->info("[R {}] export downloaded through its file link by {}", request_id, remote);
  http::response res{200, "application/json", "", {}, std::move(*source)};
  res.headers = {
      {"Content-Disposition", fmt::format("attachment; filename=\"{}.json\"", request_id)},
      {"Cache-Control", "no-store"},
      {"X-Content-Type-Options", "nosniff"},
  };
  done(std::move(res));
}

}  // namespace dsr::mineos
