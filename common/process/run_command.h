// RunCommand: runs a shell command line (ip, tc, podman, curl) the way an
// operator would and returns what it printed. Tests, tools and the Bastion
// manager configure namespaces, veths and bridges with iproute2 rather than
// re-implementing netlink. PATH gets the sbin directories first (Bazel runs
// tests with a minimal PATH).
//
// Example:
//   absl::StatusOr<std::string> out = RunCommand("ip -o link show dev eth0");
#ifndef DCTK_COMMON_PROCESS_RUN_COMMAND_H_
#define DCTK_COMMON_PROCESS_RUN_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"

namespace dctk {

// stdout and stderr of `sh -c command`; an error naming the command, its exit
// status and its output if it did not exit 0.
absl::StatusOr<std::string> RunCommand(const std::string& command);

}  // namespace dctk

#endif  // DCTK_COMMON_PROCESS_RUN_COMMAND_H_
