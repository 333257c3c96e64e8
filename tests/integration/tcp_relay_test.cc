#include "tests/integration/tcp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace dctk::integration {
namespace {

// Listens on 127.0.0.1:0; `port` is where.
int Listen(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), len), 0);
  EXPECT_EQ(listen(fd, 8), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

int Connect(const std::string& address) {
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(parts[1])));
  inet_pton(AF_INET, parts[0].c_str(), &sa.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << address;
  return fd;
}

// Echoes one connection until it closes.
std::thread EchoOnce(int listen_fd) {
  return std::thread([listen_fd] {
    const int fd = accept(listen_fd, nullptr, nullptr);
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) EXPECT_EQ(write(fd, buf, n), n);
    close(fd);
  });
}

std::string Exchange(int fd, const std::string& text) {
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  std::string got(text.size(), '\0');
  size_t have = 0;
  while (have < got.size()) {
    const ssize_t n = read(fd, got.data() + have, got.size() - have);
    if (n <= 0) break;
    have += n;
  }
  got.resize(have);
  return got;
}

TEST(TcpRelayTest, SplicesBothWays) {
  int port;
  const int server = Listen(&port);
  std::thread echo = EchoOnce(server);
  auto relay = TcpRelay::Start("127.0.0.1:0", absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(relay.ok()) << relay.status();
  const int fd = Connect((*relay)->address());
  EXPECT_EQ(Exchange(fd, "renew 7"), "renew 7");
  EXPECT_EQ(Exchange(fd, std::string(5000, 'x')), std::string(5000, 'x'));
  close(fd);  // closes the relayed connection too: the echo thread ends
  echo.join();
  close(server);
}

TEST(TcpRelayTest, TargetDownClosesTheConnection) {
  int port;
  close(Listen(&port));  // nothing listens there now
  auto relay = TcpRelay::Start("127.0.0.1:0", absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(relay.ok()) << relay.status();
  const int fd = Connect((*relay)->address());
  char c;
  EXPECT_EQ(read(fd, &c, 1), 0);
  close(fd);
}

TEST(TcpRelayTest, RestartGetsTheSamePortBack) {
  int port;
  const int server = Listen(&port);
  std::thread echo = EchoOnce(server);
  std::string address;
  {
    auto relay = TcpRelay::Start("127.0.0.1:0", absl::StrCat("127.0.0.1:", port));
    ASSERT_TRUE(relay.ok()) << relay.status();
    address = (*relay)->address();
    const int fd = Connect(address);
    EXPECT_EQ(Exchange(fd, "a"), "a");
    close(fd);
  }  // the relay closed a connection: its port has one in TIME_WAIT
  echo.join();
  auto again = TcpRelay::Start(address, absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->address(), address);
  close(server);
}

TEST(TcpRelayTest, BadAddressesAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(TcpRelay::Start("127.0.0.1", "127.0.0.1:1").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(TcpRelay::Start("127.0.0.1:0", "nohost:1").status()));
}

}  // namespace
}  // namespace dctk::integration
