#include "mom/testbed/controller_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "mom/testbed/child_process.h"

namespace dctk::mom {

absl::Status ControllerProcess::Start(const std::string& binary, const std::string& fabric_path,
                                      const std::vector<std::string>& flags) {
  if (pid_ > 0) return absl::FailedPreconditionError("mom_controller already started");
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("mom_controller binary '", binary, "' is not executable"));
  }
  std::vector<std::string> args = {binary, "--fabric=" + fabric_path};
  args.insert(args.end(), flags.begin(), flags.end());
  absl::StatusOr<ChildProcess> child = StartChild(std::move(args), SIGKILL);
  if (!child.ok()) return child.status();
  pid_ = child->pid;
  out_ = child->stdout_fd;
  return absl::OkStatus();
}

std::string ControllerProcess::NextLine(int guard_ms) {
  std::string line;
  char c;
  if (out_ < 0) return line;
  for (;;) {
    pollfd p{out_, POLLIN, 0};
    // Once a line has begun, the rest of it is on its way.
    if (poll(&p, 1, line.empty() ? guard_ms : 30000) != 1 || read(out_, &c, 1) != 1) return "";
    if (c == '\n') return line;
    line.push_back(c);
  }
}

void ControllerProcess::Stop() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (out_ >= 0) close(out_);
  out_ = -1;
}

}  // namespace dctk::mom
