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
