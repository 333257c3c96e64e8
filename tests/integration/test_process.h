// Helpers for tests that run dctk processes: a child process logging to a
// file, killed and reaped when it goes out of scope, and waiting for a file to satisfy a condition
// (a process's state file).
#ifndef DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_
#define DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/process/child_process.h"

namespace dctk::integration {

// `args` as a child process with stdout and stderr appended to `log`, SIGKILLed
// and reaped at scope exit if still running; nullptr (and the test fails) if it
// cannot be started.
std::unique_ptr<ChildProcess> StartProcess(std::vector<std::string> args, const std::string& log);

// Polls `path` every 10 ms until `ready(contents)` holds; DeadlineExceeded
// (naming the file and its last contents) after `deadline`.
absl::Status WaitForFile(const std::string& path, const std::function<bool(const std::string&)>& ready,
                         absl::Duration deadline);

// The file's contents, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace dctk::integration

#endif  // DCTK_TESTS_INTEGRATION_TEST_PROCESS_H_
