// The verbs connection manager's transport (internal/tcp_exchange.h): the only
// part of the verbs backend that runs without an RDMA device.
#include "farm/fabric/internal/tcp_exchange.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace dctk::farm::fabric::internal {
namespace {

TEST(TcpExchangeTest, RequestAndReplyRoundTrip) {
  std::string endpoint;
  auto listen_fd = TcpListen("127.0.0.1", &endpoint);
  ASSERT_TRUE(listen_fd.ok()) << listen_fd.status();
  EXPECT_EQ(endpoint.rfind("127.0.0.1:", 0), 0u);
  std::thread server([&] {
    const int fd = accept(*listen_fd, nullptr, nullptr);
    uint64_t req = 0;
    ASSERT_TRUE(ReadFull(fd, &req, sizeof(req)).ok());
    const uint64_t reply = req * 2;
    ASSERT_TRUE(WriteFull(fd, &reply, sizeof(reply)).ok());
    close(fd);
  });
  uint64_t req = 21, reply = 0;
  ASSERT_TRUE(TcpExchange(endpoint, &req, sizeof(req), &reply, sizeof(reply)).ok());
  EXPECT_EQ(reply, 42u);
  server.join();
  close(*listen_fd);
}

TEST(TcpExchangeTest, PeerClosingEarlyAndBadEndpointsAreErrors) {
  std::string endpoint;
  auto listen_fd = TcpListen("127.0.0.1", &endpoint);
  ASSERT_TRUE(listen_fd.ok());
  std::thread server([&] { close(accept(*listen_fd, nullptr, nullptr)); });
  uint64_t req = 1, reply = 0;
  absl::Status s = TcpExchange(endpoint, &req, sizeof(req), &reply, sizeof(reply));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  server.join();
  close(*listen_fd);
  EXPECT_EQ(TcpExchange("no-port", &req, 8, &reply, 8).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TcpExchange("10.0.0.1:99999", &req, 8, &reply, 8).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TcpConnect("host:1").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dctk::farm::fabric::internal
