#include "common/process/run_command.h"

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace dctk {

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  const std::string line =
      absl::StrCat("PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH; (", command, ") 2>&1");
  FILE* f = popen(line.c_str(), "r");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("running `", command, "`"));
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) output.append(buf, n);
  const int status = pclose(f);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = status != -1 && WIFEXITED(status)
                                ? absl::StrCat("exited with ", WEXITSTATUS(status))
                                : absl::StrCat("ended with status ", status);
    return absl::InternalError(absl::StrCat("`", command, "` ", how, ": ", output));
  }
  return output;
}

}  // namespace dctk
