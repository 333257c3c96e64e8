#include "bastion/manager/label_filter.h"

#include "bastion/manager/docker_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::HasSubstr;

ContainerInfo Labelled(const std::string& name, std::map<std::string, std::string> labels) {
  return ContainerInfo{.name = name, .labels = std::move(labels), .runtime_id = name};
}

TEST(LabelFilterTest, KeyValueAndKeyTermsMustAllMatch) {
  absl::StatusOr<LabelFilter> f = LabelFilter::Parse({"dctk=1a2b", "role"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(Labelled("a", {{"dctk", "1a2b"}, {"role", "farm"}})));
  EXPECT_FALSE(f->Matches(Labelled("b", {{"dctk", "ffff"}, {"role", "farm"}})));
  EXPECT_FALSE(f->Matches(Labelled("c", {{"dctk", "1a2b"}})));
  EXPECT_FALSE(f->Matches(Labelled("d", {})));
}

TEST(LabelFilterTest, EmptyFilterMatchesEverything) {
  absl::StatusOr<LabelFilter> f = LabelFilter::Parse({});
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(Labelled("a", {})));
}

TEST(LabelFilterTest, EmptyKeyIsRejectedWithTheTerm) {
  absl::StatusOr<LabelFilter> f = LabelFilter::Parse({"=x"});
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("'=x'"));
}

class ListSource : public ContainerSource {
 public:
  std::string name() const override { return "list"; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override { return list; }
  bool WaitForChange(absl::Duration) override { return false; }
  std::vector<ContainerInfo> list;
};

TEST(LabelFilterSourceTest, ListsOnlyMatchingContainers) {
  auto inner = std::make_unique<ListSource>();
  inner->list = {Labelled("mine", {{"dctk", "1"}}), Labelled("other", {{"dctk", "2"}}),
                 Labelled("none", {})};
  LabelFilterSource source(std::move(inner), *LabelFilter::Parse({"dctk=1"}));
  absl::StatusOr<std::vector<ContainerInfo>> got = source.List();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].name, "mine");
  EXPECT_EQ(source.name(), "list");
}

TEST(DockerFiltersTest, UrlEncodedJson) {
  EXPECT_EQ(DockerFilters({"dctk=1a"}, "container"),
            "%7B%22label%22%3A%5B%22dctk%3D1a%22%5D%2C%22type%22%3A%5B%22container%22%5D%7D");
  EXPECT_EQ(DockerFilters({}, ""), "%7B%7D");
}

}  // namespace
}  // namespace dctk::bastion
