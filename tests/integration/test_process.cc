#include "tests/integration/test_process.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace dctk::integration {

std::unique_ptr<ChildProcess> StartProcess(std::vector<std::string> args, const std::string& log) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(std::move(args), ChildOptions::LogTo(log));
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::Status WaitForFile(const std::string& path,
                         const std::function<bool(const std::string&)>& ready,
                         absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  std::string contents;
  while (absl::Now() < end) {
    contents = ReadFile(path);
    if (ready(contents)) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(path, ": condition not met after ", absl::FormatDuration(deadline),
                   "; last contents:\n", contents));
}

}  // namespace dctk::integration
