#include "mom/testbed/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace dctk::mom {

absl::StatusOr<int> UdpSocketInNetns(const std::string& netns) {
  const int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return absl::InternalError(absl::StrCat("open own netns: ", std::strerror(errno)));
  absl::Cleanup close_self = [self] { close(self); };
  const std::string path = "/var/run/netns/" + netns;
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  absl::Cleanup close_target = [target] { close(target); };
  if (setns(target, CLONE_NEWNET) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("setns ", netns, ": ", std::strerror(errno)));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int socket_errno = errno;
  if (setns(self, CLONE_NEWNET) != 0) {
    // Should never happen; staying in the wrong namespace would be worse.
    std::perror("setns back to the original network namespace");
    std::abort();
  }
  if (fd < 0) return absl::InternalError(absl::StrCat("socket in ", netns, ": ", std::strerror(socket_errno)));
  return fd;
}

absl::Status EnterNetns(const std::string& netns) {
  const std::string path = "/var/run/netns/" + netns;
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  absl::Cleanup close_target = [target] { close(target); };
  if (setns(target, CLONE_NEWNET) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("setns ", netns, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string Ipv4Text(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

}  // namespace dctk::mom
