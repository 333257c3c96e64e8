#include "farm/server/control.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

TEST(ControlTest, CallsAndErrors) {
  ControlServer server([](uint16_t method, absl::string_view req) -> absl::StatusOr<std::string> {
    if (method == 2) return absl::NotFoundError("no such thing");
    if (method == 4) return absl::DataLossError("restoring: the state does not match the log");
    return absl::StrCat(method, ":", req);
  });
  ASSERT_TRUE(server.Start("127.0.0.1").ok());
  auto ch = ControlChannel::Connect(server.address());
  ASSERT_TRUE(ch.ok()) << ch.status();
  absl::StatusOr<std::string> r = (*ch)->Call(1, "hello", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "1:hello");
  r = (*ch)->Call(2, "", absl::Seconds(5));
  EXPECT_TRUE(absl::IsNotFound(r.status()));
  EXPECT_NE(r.status().message().find("no such thing"), std::string::npos);
  // An error the server answers with is the server's: the channel stays.
  r = (*ch)->Call(4, "", absl::Seconds(5));
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("does not match the log"), std::string::npos);
  r = (*ch)->Call(1, "again", absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  r = (*ch)->Call(3, std::string(1 << 20, 'x'), absl::Seconds(5));  // large frames
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), (1u << 20) + 2);
}

TEST(ControlTest, ClosedServerBreaksTheChannel) {
  auto server = std::make_unique<ControlServer>(
      [](uint16_t, absl::string_view) -> absl::StatusOr<std::string> { return std::string(); });
  ASSERT_TRUE(server->Start("127.0.0.1").ok());
  auto ch = ControlChannel::Connect(server->address());
  ASSERT_TRUE(ch.ok());
  ASSERT_TRUE((*ch)->Call(1, "", absl::Seconds(5)).ok());
  server.reset();
  absl::Status first = (*ch)->Call(1, "", absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  absl::Status then = (*ch)->Call(1, "", absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(then)) << then;
  EXPECT_NE(then.message().find(first.ToString()), std::string::npos) << then << " names " << first;
  EXPECT_FALSE(ControlChannel::Connect("not-an-address").ok());
}

}  // namespace
}  // namespace dctk::farm::server
