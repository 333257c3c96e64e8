// RunCommand: runs a shell command line (ip, nsenter, podman) and returns its output.
//
// The manager and its test helpers configure namespaces, veths and bridges with
// iproute2, the way an operator would, rather than re-implementing netlink; this is the
// one place that forks. PATH includes the sbin directories (Bazel tests run with a
// minimal PATH).
//
// Example:
//   absl::StatusOr<std::string> out = RunCommand("ip -o link show dev eth0");
#ifndef DCTK_BASTION_MANAGER_RUN_COMMAND_H_
#define DCTK_BASTION_MANAGER_RUN_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"

namespace dctk::bastion {

// stdout+stderr of `sh -c command`; an error naming the command, its status and output
// if it exits non-zero.
absl::StatusOr<std::string> RunCommand(const std::string& command);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_RUN_COMMAND_H_
