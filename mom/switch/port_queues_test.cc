#include "mom/switch/port_queues.h"

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(PortQueuesTest, StrictPriorityThenFifo) {
  PortQueues<int> q(2, 4);
  // An overloaded port: background fills band 1, then MOM arrives in band 0.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.Enqueue(0, 1, 100 + i));
  EXPECT_FALSE(q.Enqueue(0, 1, 104));  // full: caller drops with kQueueFull
  ASSERT_TRUE(q.Enqueue(0, 0, 1));
  ASSERT_TRUE(q.Enqueue(0, 0, 2));
  // MOM traffic leaves first, in order, then background in order.
  std::vector<int> out;
  while (absl::optional<int> p = q.Dequeue(0)) out.push_back(*p);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 100, 101, 102, 103}));
  EXPECT_FALSE(q.Dequeue(1).has_value());  // ports are independent
}

TEST(PortQueuesTest, RingWrapsAround) {
  PortQueues<int> q(1, 3);
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(q.Enqueue(0, 1, round));
    ASSERT_TRUE(q.Enqueue(0, 1, round + 100));
    EXPECT_EQ(*q.Dequeue(0), round);
    EXPECT_EQ(*q.Dequeue(0), round + 100);
    EXPECT_EQ(q.size(0, 1), 0u);
  }
}

}  // namespace
}  // namespace dctk::mom
