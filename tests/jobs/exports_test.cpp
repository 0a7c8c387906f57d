#include "dsr/jobs/exports.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>

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
  EXPECT_EQ(remove_exports(dir.path(), *store->file_links(t0 + 71h, true)), 0u);
  EXPECT_EQ(purge_exports(dir.path(), now - 7 * 24h, *store->file_links(t0 + 71h, false)), 0u);
  EXPECT_TRUE(std::filesystem::exists(file));
  // The link expired: the export goes, and only it.
  EXPECT_EQ(remove_exports(dir.path(), *store->file_links(t0 + 72h, true)), 1u);
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_TRUE(std::filesystem::exists(other));
}

TEST(Exports, StartUpRemovesOnlyUnfinishedDownloadsItWrote) {
  test::temp_dir dir;
  const auto kept = dir.write("7.json", "{}");
  dir.write("export-one-00ff00ff00ff00ff.part", "{\"ids\":");
  dir.write("8.json.tmp", "{");
  // Files the daemon never writes stay, whatever their extension; so does a symlink.
  const auto foreign_part = dir.write("backup.part", "mine");
  const auto foreign_tmp = dir.write("notes.tmp", "mine");
  const auto short_part = dir.write("export-one-00ff.part", "mine");
  const auto target = dir.write("elsewhere.txt", "mine");
  std::filesystem::create_symlink(target, dir.path() / "9.json.tmp");
  EXPECT_EQ(remove_partial_exports(dir.path()), 2u);
  for (const auto& p : {kept, foreign_part, foreign_tmp, short_part, target}) {
    EXPECT_TRUE(std::filesystem::exists(p)) << p;
  }
  EXPECT_TRUE(std::filesystem::is_symlink(dir.path() / "9.json.tmp"));
}

TEST(Exports, PurgeDeletesOnlyExportsTheDaemonWrote) {
  test::temp_dir dir;
  const auto now = std::filesystem::file_time_type::clock::now();
  const auto ours = dir.write("12.json", "{}");
  const auto theirs = dir.write("report.json", "{}");
  const auto target = dir.write("keep.txt", "mine");
  std::filesystem::create_symlink(target, dir.path() / "13.json");
  for (const auto& p : {ours, theirs}) {
    std::filesystem::last_write_time(p, now - 30 * 24h);
  }
  EXPECT_EQ(purge_exports(dir.path(), now - 7 * 24h), 1u);
  EXPECT_FALSE(std::filesystem::exists(ours));
  EXPECT_TRUE(std::filesystem::exists(theirs));
  EXPECT_TRUE(std::filesystem::exists(target));
}

TEST(Exports, DirectoryIsPrivateAndFilesAreNamedByJob) {
  test::temp_dir dir;
  const auto exports = export_dir_for(dir.path() / "dsr.sqlite3");
  EXPECT_EQ(exports, dir.path() / "exports");
  ASSERT_TRUE(prepare_export_dir(exports));
  EXPECT_EQ(std::filesystem::status(exports).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
  EXPECT_EQ(export_path(exports, 42), exports / "42.json");
  // An own folder left open to others is made private again.
  std::filesystem::permissions(exports, std::filesystem::perms::all);
  ASSERT_TRUE(prepare_export_dir(exports));
  EXPECT_EQ(std::filesystem::status(exports).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
}

TEST(Exports, ASymlinkedExportDirectoryIsRefusedAndLeftAlone) {
  test::temp_dir dir;
  const auto foreign = dir.path() / "foreign";
  std::filesystem::create_directory(foreign);
  std::filesystem::permissions(
      foreign, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                   std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                   std::filesystem::perms::others_exec);
  const auto file = foreign / "3.json";
  std::ofstream(file) << "{}";
  std::filesystem::create_directory_symlink(foreign, dir.path() / "exports");
  const auto r = prepare_export_dir(dir.path() / "exports");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("is a symlink"), std::string::npos);
  EXPECT_NE(r.error().detail.find((dir.path() / "exports").string()), std::string::npos);
  EXPECT_EQ(std::filesystem::status(foreign).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                std::filesystem::perms::others_exec);  // never chmod-ed through the link
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST(Exports, TheDaemonsFileNamesAreRecognisedExactly) {
  EXPECT_TRUE(is_export_name("42.json"));
  EXPECT_FALSE(is_export_name("x42.json"));
  EXPECT_FALSE(is_export_name(".json"));
  EXPECT_TRUE(is_download_name("export-one-0123456789abcdef.part"));
  EXPECT_FALSE(is_download_name("export-one-0123456789ABCDEF.part"));
  EXPECT_FALSE(is_download_name("export-one-0123.part"));
  EXPECT_TRUE(is_scan_name("42.json.tmp"));
  EXPECT_FALSE(is_scan_name("notes.tmp"));
}

}  // namespace
}  // namespace dsr
