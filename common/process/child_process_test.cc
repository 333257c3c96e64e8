#include "common/process/child_process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace dctk {
namespace {

std::unique_ptr<ChildProcess> Sh(const std::string& script, ChildOptions options = {}) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start({"/bin/sh", "-c", script}, std::move(options));
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ChildProcessTest, ReadsPipedLinesAndExitCode) {
  auto child = Sh("echo one; echo two >&2; printf 'three\\nfour'; exit 3",
                  {.out = ChildOutput::Pipe(), .err = ChildOutput::Pipe()});
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(*child->ReadLine(absl::Seconds(30)), "one");
  EXPECT_EQ(*child->ReadErrLine(absl::Seconds(30)), "two");
  EXPECT_EQ(*child->ReadLine(absl::Seconds(30)), "three");
  absl::StatusOr<std::string> rest = child->ReadLine(absl::Seconds(30));
  EXPECT_EQ(rest.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(rest.status().message().find("four"), std::string::npos) << rest.status();
  EXPECT_EQ(child->Wait(), 3);
  EXPECT_FALSE(child->running());
  EXPECT_EQ(child->Wait(), -1);
}

TEST(ChildProcessTest, ReadLineTimesOutWithWhatItHas) {
  auto child = Sh("printf partial; exec sleep 60", {.out = ChildOutput::Pipe()});
  ASSERT_NE(child, nullptr);
  absl::StatusOr<std::string> line = child->ReadLine(absl::Milliseconds(200));
  EXPECT_EQ(line.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(line.status().message().find("partial"), std::string::npos) << line.status();
  EXPECT_EQ(child->Kill(SIGTERM), 128 + SIGTERM);
}

TEST(ChildProcessTest, ReadToEndReturnsTheRestWithALastLineWithoutNewline) {
  auto child = Sh("echo first; echo second; printf 'last'", {.out = ChildOutput::Pipe()});
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(*child->ReadLine(absl::Seconds(30)), "first");
  EXPECT_EQ(*child->ReadToEnd(absl::Seconds(30)), "second\nlast");
  EXPECT_EQ(*child->ReadToEnd(absl::Seconds(30)), "");  // nothing after the end
  EXPECT_EQ(child->Wait(), 0);
}

TEST(ChildProcessTest, ReadToEndTimesOutAndKeepsWhatItRead) {
  auto child = Sh("printf 'partial'; exec sleep 60", {.out = ChildOutput::Pipe()});
  ASSERT_NE(child, nullptr);
  absl::StatusOr<std::string> rest = child->ReadToEnd(absl::Milliseconds(200));
  EXPECT_EQ(rest.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(child->Kill(SIGKILL), 128 + SIGKILL);
  // What the timed-out call read and what followed, once the stream ended.
  EXPECT_EQ(*child->ReadToEnd(absl::Seconds(30)), "partial");
  EXPECT_EQ(ChildProcess::Start({"/bin/true"}).value()->ReadToEnd().status().code(),
            absl::StatusCode::kFailedPrecondition);  // stdout not piped
}

TEST(ChildProcessTest, FilesAppendOrTruncate) {
  const std::string log = TempPath("child_log");
  { std::ofstream(log) << "old\n"; }
  auto appended =
      Sh("echo out; echo err >&2", {.out = ChildOutput::File(log), .err = ChildOutput::File(log)});
  ASSERT_NE(appended, nullptr);
  EXPECT_EQ(appended->Wait(), 0);
  EXPECT_EQ(Contents(log), "old\nout\nerr\n");
  auto truncated = Sh("echo new", {.out = ChildOutput::File(log, /*append=*/false)});
  ASSERT_NE(truncated, nullptr);
  EXPECT_EQ(truncated->Wait(), 0);
  EXPECT_EQ(Contents(log), "new\n");
}

TEST(ChildProcessTest, NamesAProgramThatCannotRun) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start({"/nonexistent/program", "--flag"});
  EXPECT_EQ(child.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(child.status().message().find("/nonexistent/program"), std::string::npos)
      << child.status();
  EXPECT_EQ(ChildProcess::Start({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChildProcessTest, BoundedWaitLeavesTheChildRunning) {
  auto child = Sh("exec sleep 60");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->Wait(absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(child->running());
  EXPECT_EQ(child->Kill(SIGKILL), 128 + SIGKILL);
}

TEST(ChildProcessTest, PauseStopsUntilContinued) {
  auto child = Sh("while :; do sleep 0.01; done");
  ASSERT_NE(child, nullptr);
  EXPECT_TRUE(child->Pause());
  EXPECT_TRUE(child->Signal(SIGCONT));
  EXPECT_EQ(child->Kill(SIGKILL), 128 + SIGKILL);
  EXPECT_FALSE(child->Pause());
}

TEST(ChildProcessTest, OwnGroupSignalsReachGrandchildren) {
  // The shell starts a grandchild and waits for it; a signal to the shell
  // alone would leave the grandchild running with the pipe open.
  auto child = Sh("sleep 60; echo never", {.out = ChildOutput::Pipe(), .own_process_group = true});
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->Kill(SIGKILL), 128 + SIGKILL);
  // Every writer of the pipe is gone: the stream ends at once.
  EXPECT_EQ(child->ReadLine(absl::Seconds(30)).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(ChildProcessTest, StartsWithAnEmptySignalMask) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  auto child = Sh("exec sleep 60");
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->Kill(SIGTERM), 128 + SIGTERM);
}

TEST(ChildProcessTest, DestructionStopsTheChild) {
  pid_t pid;
  {
    auto child = Sh("exec sleep 60", {.stop_signal = SIGTERM});
    ASSERT_NE(child, nullptr);
    pid = child->pid();
  }
  EXPECT_NE(kill(pid, 0), 0);  // reaped: no such process
}

}  // namespace
}  // namespace dctk
