// StartChild: a child process of a test or tool (mom_switch, mom_controller)
// whose stdout the parent reads from a pipe. Its signal mask is cleared (a
// tool may block SIGINT / SIGTERM in all its threads to handle them itself)
// and the kernel sends it `death_signal` if the parent dies first. Stopping
// and reaping it is the caller's.
//
// Example:
//   absl::StatusOr<ChildProcess> c = StartChild({"/bin/echo", "hi"}, SIGTERM);
//   read(c->stdout_fd, buf, sizeof(buf));  // "hi\n"
//   waitpid(c->pid, nullptr, 0);
#ifndef DCTK_MOM_TESTBED_CHILD_PROCESS_H_
#define DCTK_MOM_TESTBED_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dctk::mom {

struct ChildProcess {
  pid_t pid = -1;
  int stdout_fd = -1;  // the read end of its stdout
};

// Runs args[0] (a path) with `args`.
absl::StatusOr<ChildProcess> StartChild(std::vector<std::string> args, int death_signal);

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_CHILD_PROCESS_H_
