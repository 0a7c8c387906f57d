#include "dsr/jobs/exports.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace dsr {
namespace {

using namespace std::chrono_literals;

TEST(Exports, PurgeDeletesOnlyExportsOlderThanTheCutoff) {
  test::temp_dir dir;
  const auto now = std::filesystem::file_time_type::clock::now();
  const auto old_file = dir.write("1.json", "{}");
  const auto fresh_file = dir.write("2.json", "{}");
  const auto other = dir.write("notes.txt", "keep");
  std::filesystem::last_write_time(old_file, now - 8 * 24h);
  std::filesystem::last_write_time(other, now - 8 * 24h);
  std::filesystem::last_write_time(fresh_file, now - 6 * 24h);
  EXPECT_EQ(purge_exports(dir.path(), now - 7 * 24h), 1u);
  EXPECT_FALSE(std::filesystem::exists(old_file));
  EXPECT_TRUE(std::filesystem::exists(fresh_file));
  EXPECT_TRUE(std::filesystem::exists(other));
  EXPECT_EQ(purge_exports(dir.path() / "missing", now), 0u);
}

// A file link's export lives exactly as long as the link: the hourly purge deletes it once the
// recorded expiry has passed (with an injected "now"), and spares it before, whatever its age.
TEST(Exports, AFileLinksExportIsDeletedWhenItsLinkExpiresAndNotBefore) {
  test::temp_dir dir;
  auto store = std::move(*open_sqlite_store({":memory:"}));
  const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 12 / 1}};
  new_job j;
  j.op = operation::copy;
  j.request_id = "req-big";
  j.trace_id = "t-big";
  j.received_at = t0;
  j.subject = "jane@example.com";
  ASSERT_TRUE(store->insert(std::span<const new_job>(&j, 1), 10));
  const auto id = (**store->find("req-big")).id;
  ASSERT_TRUE(store->file_link_expiry(id, t0 + 72h, t0));
  report_update ack;  // MineOS acknowledged the report carrying the link
  ack.acknowledged = true;
  ASSERT_TRUE(store->record_report(id, ack, t0));
  const auto file = dir.write(std::to_string(id) + ".json", "{}");
  const auto other = dir.write("999.json", "{}");
  // Older than export_retention_days, but its link is live: kept.
  const auto now = std::filesystem::file_time_type::clock::now();
  std::filesystem::last_write_time(file, now - 30 * 24h);
  EXPECT_EQ(*remove_expired_link_exports(*store, dir.path(), t0 + 71h), 0u);
  EXPECT_EQ(purge_exports(dir.path(), now - 7 * 24h, *store->file_links(t0 + 71h, false)), 0u);
  EXPECT_TRUE(std::filesystem::exists(file));
  // The link expired: the export goes, and only it.
  EXPECT_EQ(*remove_expired_link_exports(*store, dir.path(), t0 + 72h), 1u);
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_TRUE(std::filesystem::exists(other));
}

TEST(Exports, StartUpRemovesOnlyUnfinishedDownloads) {
  test::temp_dir dir;
  const auto kept = dir.write("7.json", "{}");
  dir.write("export-one-00ff.part", "{\"ids\":");
  dir.write("8.json.tmp", "{");
  EXPECT_EQ(remove_partial_exports(dir.path()), 2u);
  EXPECT_TRUE(std::filesystem::exists(kept));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Exports, DirectoryIsPrivateAndFilesAreNamedByJob) {
  test::temp_dir dir;
  const auto exports = export_dir_for(dir.path() / "dsr.sqlite3");
  EXPECT_EQ(exports, dir.path() / "exports");
  ASSERT_TRUE(prepare_export_dir(exports));
  EXPECT_EQ(std::filesystem::status(exports).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
  EXPECT_EQ(export_path(exports, 42), exports / "42.json");
}

}  // namespace
}  // namespace dsr
