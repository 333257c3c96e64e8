#include "common/transport/address.h"

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

using ::testing::HasSubstr;

TEST(AddressTest, ParsesAndPrints) {
  absl::StatusOr<Address> a = Address::Parse("10.1.2.3:7000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ip(), 0x0a010203u);
  EXPECT_EQ(a->port(), 7000);
  EXPECT_EQ(a->ToString(), "10.1.2.3:7000");
  EXPECT_FALSE(a->is_multicast());
  EXPECT_TRUE(Address::Parse("239.1.1.1:5")->is_multicast());
}

TEST(AddressTest, RejectsBadTextNamingThePart) {
  EXPECT_THAT(Address::Parse("10.1.2.3").status().message(), HasSubstr("no ':port'"));
  EXPECT_THAT(Address::Parse("10.1.2:80").status().message(),
              HasSubstr("'10.1.2' is not an IPv4 address"));
  EXPECT_THAT(Address::Parse("10.1.2.3:70000").status().message(),
              HasSubstr("'70000' is not in 0-65535"));
  EXPECT_THAT(Address::Parse("10.1.2.3:x").status().message(), HasSubstr("port 'x'"));
}

TEST(AddressTest, HashesAndOrders) {
  absl::flat_hash_set<Address> set = {Address::Loopback(1), Address::Loopback(1),
                                      Address::Loopback(2)};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_LT(Address::Loopback(1), Address::Loopback(2));
}

}  // namespace
}  // namespace dctk::transport
