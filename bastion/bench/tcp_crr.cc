// tcp_crr: connection setup rate, netperf TCP_CRR style: per transaction the client
// connects, sends one byte, reads one byte back and closes (with a reset, so no TIME_WAIT
// runs out the ephemeral ports); the server answers each connection once.
//
//   tcp_crr server PORT                 prints "ready", serves until killed
//   tcp_crr client IPV4 PORT SECONDS    prints "<transactions per second> <mean us>"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

int Fail(const char* what) {
  std::perror(what);
  return 1;
}

int Server(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fail("bind");
  if (listen(s, 1024) != 0) return Fail("listen");
  std::printf("ready\n");
  std::fflush(stdout);
  while (true) {
    int c = accept(s, nullptr, nullptr);
    if (c < 0) continue;
    char byte;
    if (read(c, &byte, 1) == 1) (void)!write(c, &byte, 1);
    close(c);
  }
}

int Client(const char* ip, int port, double seconds) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) return Fail("inet_pton");
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  long done = 0;
  while (Clock::now() < deadline) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0) return Fail("socket");
    if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fail("connect");
    char byte = 'x';
    if (write(c, &byte, 1) != 1 || read(c, &byte, 1) != 1) return Fail("transaction");
    linger reset{.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    close(c);
    ++done;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%.0f %.1f\n", done / elapsed, elapsed / done * 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "server") == 0) return Server(std::atoi(argv[2]));
  if (argc == 5 && std::strcmp(argv[1], "client") == 0) {
    return Client(argv[2], std::atoi(argv[3]), std::atof(argv[4]));
  }
  std::fprintf(stderr, "usage: tcp_crr server PORT | tcp_crr client IPV4 PORT SECONDS\n");
  return 2;
}
