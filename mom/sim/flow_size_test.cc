#include "mom/sim/flow_size.h"

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(FlowSizeCdfTest, WebSearchMeanAndQuantiles) {
  const FlowSizeCdf& cdf = FlowSizeCdf::WebSearch();
  // Sum over segments of probability mass times segment midpoint.
  EXPECT_NEAR(cdf.MeanBytes(), 1711250, 1);
  EXPECT_EQ(cdf.Quantile(0.15), 10000u);
  EXPECT_EQ(cdf.Quantile(0.175), 15000u);
  EXPECT_EQ(cdf.Quantile(1.0), 30000000u);
  EXPECT_EQ(cdf.Quantile(0.0), 1u);
}

TEST(FlowSizeCdfTest, SampleMeanConverges) {
  std::mt19937_64 rng(1);
  for (const FlowSizeCdf* cdf : {&FlowSizeCdf::WebSearch(), &FlowSizeCdf::FbHadoop()}) {
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) sum += cdf->Sample(rng);
    EXPECT_NEAR(sum / n / cdf->MeanBytes(), 1.0, 0.05);
  }
}

TEST(FlowSizeCdfTest, ByNameAndValidation) {
  EXPECT_EQ(*FlowSizeCdf::ByName("fb-hadoop"), &FlowSizeCdf::FbHadoop());
  EXPECT_FALSE(FlowSizeCdf::ByName("nope").ok());
  EXPECT_FALSE(FlowSizeCdf::Create({{0, 0}, {10, 0.5}}).ok());
  EXPECT_FALSE(FlowSizeCdf::Create({{0, 0}, {10, 0.6}, {5, 1}}).ok());
  EXPECT_TRUE(FlowSizeCdf::Create({{0, 0}, {10, 1}}).ok());
}

}  // namespace
}  // namespace dctk::mom
