// Helpers for tests that run dctk processes: a child process that is killed
// and reaped when it goes out of scope, a free UDP port on 127.0.0.1, and
// waiting for a file to satisfy a condition (a process's state file).
#ifndef DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_
#define DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dctk::integration {

// A child process with stdout and stderr appended to `log`; SIGKILLed and
// reaped at scope exit if still running.
class Process {
 public:
  Process(std::vector<std::string> args, const std::string& log);
  ~Process() { Kill(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool ok() const { return pid_ > 0; }
  // Sends `sig`, waits, returns the exit status (-1 if killed by a signal).
  int Kill(int sig);
  int Wait();

 private:
  pid_t pid_ = -1;
};

// A UDP port on 127.0.0.1 that was free a moment ago.
int FreeUdpPort();

// Polls `path` every 10 ms until `ready(contents)` holds; DeadlineExceeded
// (naming the file and its last contents) after `deadline`.
absl::Status WaitForFile(const std::string& path, const std::function<bool(const std::string&)>& ready,
                         absl::Duration deadline);

// The file's contents, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace dctk::integration

#endif  // DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_
