#include "common/process/run_command.h"

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace dctk {
namespace {

TEST(RunCommandTest, ReturnsStdoutAndStderr) {
  absl::StatusOr<std::string> out = RunCommand("echo out; echo err >&2");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "out\nerr\n");
}

TEST(RunCommandTest, SearchesTheSbinDirectoriesFirst) {
  absl::StatusOr<std::string> out = RunCommand("echo $PATH");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->rfind("/usr/sbin:/usr/bin:/sbin:/bin", 0), 0u) << *out;
}

TEST(RunCommandTest, NamesAFailingCommandItsStatusAndOutput) {
  absl::StatusOr<std::string> out = RunCommand("echo broken; exit 3");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(out.status().message(), "`echo broken; exit 3` exited with 3: broken\n");
}

}  // namespace
}  // namespace dctk
