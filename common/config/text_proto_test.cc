#include "common/config/text_proto.h"

#include "common/config/cluster_config.h"
#include "common/config/text_proto_test.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::config {
namespace {

using test::ModuleConfig;
using ::testing::HasSubstr;

TEST(TextProtoTest, ParsesModuleMessage) {
  absl::StatusOr<ModuleConfig> c = ParseTextProto<ModuleConfig>(
      "batch_size: 8\nstages { name: \"a\" workers: 2 }\n", "m.conf");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->batch_size(), 8);
  ASSERT_EQ(c->stages_size(), 1);
  EXPECT_EQ(c->stages(0).workers(), 2);
}

TEST(TextProtoTest, SyntaxErrorNamesFileLineAndColumn) {
  absl::StatusOr<ModuleConfig> c =
      ParseTextProto<ModuleConfig>("batch_size: 8\n  stages { workers: many }\n", "m.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("m.conf:2:21: Expected integer, got: many"));
}

TEST(TextProtoTest, UnknownFieldIsAnError) {
  absl::StatusOr<ModuleConfig> c = ParseTextProto<ModuleConfig>("batchsize: 8\n", "m.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("m.conf:1:10:"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("batchsize"));
}

TEST(TextProtoTest, MissingFileIsNotFound) {
  absl::StatusOr<ModuleConfig> c = LoadTextProto<ModuleConfig>("no/such/file.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("no/such/file.conf"));
}

TEST(TextProtoTest, SourceMapNamesLineAndPathOfNestedFields) {
  absl::StatusOr<TextProto<ModuleConfig>> t = ParseTextProtoWithSource<ModuleConfig>(
      "batch_size: 8\n"
      "stages { name: \"a\" }\n"
      "stages {\n"
      "  name: \"b\"\n"
      "  workers: 0\n"
      "}\n",
      "m.conf");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->source.Line("batch_size"), 1);
  SourceMap stage1 = t->source.Nested("stages", 1);
  EXPECT_EQ(stage1.Line("workers"), 5);
  EXPECT_EQ(stage1.Where("workers"), "m.conf:5");
  EXPECT_EQ(std::string(stage1.Error("workers", -1, "must be positive").message()),
            "m.conf:5: stages[1].workers: must be positive");
  // A field the file does not set: the error names the line its message starts on.
  EXPECT_EQ(std::string(t->source.Nested("stages", 0).Error("workers", -1, "missing").message()),
            "m.conf:2: stages[0].workers: missing");
  // A map with no parse tree knows only the file.
  EXPECT_EQ(SourceMap("x.conf").Where("batch_size"), "x.conf");
}

TEST(TextProtoTest, ModuleEmbedsAndChecksTheClusterSection) {
  absl::StatusOr<TextProto<ModuleConfig>> t = ParseTextProtoWithSource<ModuleConfig>(
      "batch_size: 8\n"
      "cluster {\n"
      "  nodes { name: \"r0\" address: \"10.0.0.1:1\" }\n"
      "  nodes { name: \"r1\" address: \"10.0.0.1:1\" }\n"
      "}\n",
      "m.conf");
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<ClusterConfig> c =
      ClusterConfig::FromProto(t->message.cluster(), t->source.Nested("cluster"));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("m.conf:4: cluster.nodes[1].address: duplicate address 10.0.0.1:1"));
}

}  // namespace
}  // namespace dctk::config
