#include "bastion/manager/run_command.h"

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace dctk::bastion {

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  const std::string line =
      absl::StrCat("PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH; (", command, ") 2>&1");
  FILE* f = popen(line.c_str(), "r");
  if (!f) return absl::ErrnoToStatus(errno, absl::StrCat("running `", command, "`"));
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) output.append(buf, n);
  const int status = pclose(f);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (status ", status,
                                            "): ", output));
  }
  return output;
}

}  // namespace dctk::bastion
