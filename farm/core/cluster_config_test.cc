#include "farm/core/cluster_config.h"

#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

TEST(ClusterConfigTest, ParsesAndFillsDefaults) {
  auto c = ParseClusterConfig(R"(
    machines { id: 1 } machines { id: 2 } machines { id: 3 }
  )");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->region_size(), kDefaultRegionSize);
  EXPECT_EQ(c->replicas(), 3u);
  EXPECT_EQ(c->virtual_nodes(), 64u);
  EXPECT_EQ(c->fabric(), "auto");
  auto ring = MakeRing(*c);
  ASSERT_TRUE(ring.ok());
  EXPECT_EQ(ring->Place(1, c->replicas())->size(), 3u);
}

TEST(ClusterConfigTest, ErrorsNameTheOriginAndField) {
  auto c = ParseClusterConfig("machines { id: 1 } machines { id: 1 }", "farm.textproto");
  EXPECT_NE(c.status().message().find("farm.textproto: field machines[1].id"), std::string::npos)
      << c.status();
  c = ParseClusterConfig("machines { id: 1 } replicas: 2", "x");
  EXPECT_NE(c.status().message().find("field replicas"), std::string::npos) << c.status();
  c = ParseClusterConfig("machines { id: 1 } replicas: 1 region_size: 1000", "x");
  EXPECT_NE(c.status().message().find("field region_size"), std::string::npos) << c.status();
  c = ParseClusterConfig("machines { id: 1 } replicas: 1 fabric: \"tcp\"", "x");
  EXPECT_NE(c.status().message().find("field fabric"), std::string::npos) << c.status();
  c = ParseClusterConfig("machines { idd: 1 }", "x");
  EXPECT_NE(c.status().message().find("x: line 1"), std::string::npos) << c.status();
  EXPECT_EQ(LoadClusterConfig("/nonexistent/farm.textproto").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dctk::farm
