#include "common/transport/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "glog/logging.h"

namespace dctk::transport {

uint16_t FreeLoopbackUdpPort() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  PCHECK(fd >= 0) << "socket";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  PCHECK(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) << "bind 127.0.0.1:0";
  PCHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) << "getsockname";
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace dctk::transport
