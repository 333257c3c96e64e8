#include "bastion/oci_hook/container_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bastion/oci_hook/oci_state.h"

namespace dctk::bastion::oci_hook {
namespace {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return in ? std::string(std::istreambuf_iterator<char>(in), {}) : "";
}

struct Link {
  std::string name;
  int ifindex = 0;
  int peer_ifindex = 0;  // IFLA_LINK: for a veth, the peer's index in its namespace
  std::string mac;
};

// RTM_GETLINK for `ifname` (or, if empty, `ifindex`) on a netlink socket of the
// namespace to ask; NotFound if there is no such interface.
absl::StatusOr<Link> QueryLink(int nl, const std::string& ifname, int ifindex = 0) {
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
    char attrs[64];
  } req{};
  if (ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("interface name '", ifname, "' too long"));
  }
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = ifindex;
  if (!ifname.empty()) {
    auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) +
                                          NLMSG_ALIGN(req.nh.nlmsg_len));
    rta->rta_type = IFLA_IFNAME;
    rta->rta_len = RTA_LENGTH(ifname.size() + 1);
    std::memcpy(RTA_DATA(rta), ifname.c_str(), ifname.size() + 1);
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
  }
  const std::string what = ifname.empty() ? absl::StrCat("ifindex ", ifindex) : ifname;
  if (send(nl, &req, req.nh.nlmsg_len, 0) < 0) return Errno("netlink RTM_GETLINK");
  alignas(nlmsghdr) char buf[16384];
  const ssize_t n = recv(nl, buf, sizeof(buf), 0);
  if (n < 0) return Errno("netlink RTM_GETLINK reply");
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(h, static_cast<size_t>(n))) {
    return absl::InternalError("netlink RTM_GETLINK: truncated reply");
  }
  if (h->nlmsg_type == NLMSG_ERROR) {
    const int err = -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    if (err == ENODEV) return absl::NotFoundError(absl::StrCat("no interface ", what));
    return absl::InternalError(
        absl::StrCat("netlink RTM_GETLINK ", what, ": ", std::strerror(err)));
  }
  if (h->nlmsg_type != RTM_NEWLINK) {
    return absl::InternalError(
        absl::StrCat("netlink RTM_GETLINK ", what, ": reply type ", h->nlmsg_type));
  }
  auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
  Link link;
  link.ifindex = ifi->ifi_index;
  int len = static_cast<int>(IFLA_PAYLOAD(h));
  for (rtattr* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
      const auto* b = static_cast<const unsigned char*>(RTA_DATA(a));
      link.mac = absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
                                 b[5]);
    } else if (a->rta_type == IFLA_IFNAME) {
      link.name = static_cast<const char*>(RTA_DATA(a));
    } else if (a->rta_type == IFLA_LINK && RTA_PAYLOAD(a) == 4) {
      std::memcpy(&link.peer_ifindex, RTA_DATA(a), 4);
    }
  }
  return link;
}

}  // namespace

absl::StatusOr<ContainerNetwork> ReadContainerNetwork(int pid, const std::string& ifname) {
  const std::string ns_path = absl::StrCat("/proc/", pid, "/ns/net");
  Fd target(open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (target.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("process ", pid, ": gone"));
    return Errno("opening " + ns_path);
  }
  Fd self(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (self.get() < 0) return Errno("opening /proc/thread-self/ns/net");
  struct stat theirs, ours;
  if (fstat(target.get(), &theirs) != 0 || fstat(self.get(), &ours) != 0) {
    return Errno("stat of a network namespace");
  }
  ContainerNetwork net;
  if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
    net.host_network = true;
    return net;
  }
  // Sockets belong to the namespace they are made in: make them there, come back.
  if (setns(target.get(), CLONE_NEWNET) != 0) return Errno("entering " + ns_path);
  Fd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  const int nl_errno = errno;
  if (nl.get() < 0) {
    setns(self.get(), CLONE_NEWNET);
    errno = nl_errno;
    return Errno("netlink socket in " + ns_path);
  }
  Fd inet(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int inet_errno = errno;
  if (setns(self.get(), CLONE_NEWNET) != 0) {
    return Errno("returning to the hook's network namespace");  // nothing below may run there
  }
  if (inet.get() < 0) {
    errno = inet_errno;
    return Errno("inet socket in " + ns_path);
  }
  absl::StatusOr<Link> link = QueryLink(nl.get(), ifname);
  if (absl::IsNotFound(link.status())) {
    net.has_interface = false;
    return net;
  }
  if (!link.ok()) return link.status();
  net.mac = link->mac;
  if (net.mac.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(ifname, " has no Ethernet address"));
  }
  if (link->peer_ifindex <= 0 || link->peer_ifindex == link->ifindex) {
    return absl::FailedPreconditionError(absl::StrCat(ifname, " is not a veth"));
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
  if (ioctl(inet.get(), SIOCGIFADDR, &ifr) != 0) {
    if (errno == EADDRNOTAVAIL) {
      return absl::FailedPreconditionError(absl::StrCat(
          ifname, " has no IPv4 address (Bastion enforces IPv4 only)"));
    }
    return Errno("SIOCGIFADDR " + ifname);
  }
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr, text,
            sizeof(text));
  net.ip = text;
  // The peer index is in the peer's namespace: it must be ours, and point back.
  Fd host_nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (host_nl.get() < 0) return Errno("netlink socket");
  absl::StatusOr<Link> peer = QueryLink(host_nl.get(), "", link->peer_ifindex);
  if (!peer.ok() && !absl::IsNotFound(peer.status())) return peer.status();
  if (!peer.ok() || peer->peer_ifindex != link->ifindex || peer->name.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the peer of ", ifname, " (ifindex ", link->peer_ifindex,
                     ") is not in the hook's network namespace (run the runtime and bastiond "
                     "in the namespace of the container bridge)"));
  }
  net.host_veth = peer->name;
  net.gateway = DefaultGateway(ReadText(absl::StrCat("/proc/", pid, "/net/route")));
  return net;
}

}  // namespace dctk::bastion::oci_hook
