#include "bastion/policy/selector_index.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ContainerInfo Make(uint32_t id, std::string name, std::map<std::string, std::string> labels) {
  return ContainerInfo{.id = id, .name = std::move(name), .labels = std::move(labels)};
}

const std::vector<ContainerInfo>& Containers() {
  static const auto* c = new std::vector<ContainerInfo>{
      Make(5, "web-1", {{"role", "web"}, {"zone", "a"}}),
      Make(2, "web-2", {{"role", "web"}, {"zone", "b"}}),
      Make(9, "web", {{"role", "web"}}),
      Make(3, "db", {{"role", "db"}, {"zone", "a"}}),
      Make(4, "db", {{"role", "db"}}),  // two containers may share a name
      Make(7, "webby", {}),
  };
  return *c;
}

Selector Names(std::vector<std::string> names) { return Selector{.names = std::move(names)}; }
Selector Labels(std::map<std::string, std::string> labels) {
  return Selector{.labels = std::move(labels)};
}

TEST(ContainerIndexTest, ExactAndPrefixNames) {
  ContainerIndex index(Containers());
  EXPECT_THAT(index.Members(Names({"db"})), ElementsAre(3, 4));
  EXPECT_THAT(index.Members(Names({"web-*"})), ElementsAre(2, 5));
  EXPECT_THAT(index.Members(Names({"web*"})), ElementsAre(2, 5, 7, 9));
  EXPECT_THAT(index.Members(Names({"web-1", "web-*", "db"})), ElementsAre(2, 3, 4, 5));
  EXPECT_THAT(index.Members(Names({"nothing", "we"})), IsEmpty());
}

TEST(ContainerIndexTest, LabelsMustAllMatch) {
  ContainerIndex index(Containers());
  EXPECT_THAT(index.Members(Labels({{"role", "web"}})), ElementsAre(2, 5, 9));
  EXPECT_THAT(index.Members(Labels({{"role", "web"}, {"zone", "a"}})), ElementsAre(5));
  EXPECT_THAT(index.Members(Labels({{"zone", "a"}})), ElementsAre(3, 5));
  EXPECT_THAT(index.Members(Labels({{"role", "cache"}})), IsEmpty());
  EXPECT_THAT(index.Members(Labels({{"tier", "x"}})), IsEmpty());
}

TEST(ContainerIndexTest, NamesAndLabels) {
  ContainerIndex index(Containers());
  Selector s = Names({"web*", "db"});
  s.labels = {{"zone", "a"}};
  EXPECT_THAT(index.Members(s), ElementsAre(3, 5));
}

TEST(ContainerIndexTest, AgreesWithSelectsAndFinds) {
  ContainerIndex index(Containers());
  for (const Selector& s : {Names({"web*"}), Labels({{"role", "db"}}), Names({"db"}), Selector{}}) {
    std::vector<uint32_t> want;
    for (const ContainerInfo& c : Containers()) {
      if (Selects(s, c)) want.push_back(c.id);
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(index.Members(s), want);
  }
  ASSERT_NE(index.Find(7), nullptr);
  EXPECT_EQ(index.Find(7)->name, "webby");
  EXPECT_EQ(index.Find(8), nullptr);
}

}  // namespace
}  // namespace dctk::bastion
