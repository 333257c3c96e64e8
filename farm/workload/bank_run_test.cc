// Smoke test of bank_bench's logic (RunBank) with small numbers: a few
// hundred ms of transfers, with and without a machine killed halfway; the
// invariant holds and the progress lines are printed. Bad options are
// rejected with a message naming the option.
#include "farm/workload/bank_run.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

// Runs RunBank and returns what it printed.
absl::StatusOr<BankRunResult> RunCapturing(const BankRunOptions& o, std::string* printed) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buf, &size);
  absl::StatusOr<BankRunResult> r = RunBank(o, out);
  fclose(out);
  printed->assign(buf, size);
  free(buf);
  printf("%s", printed->c_str());
  return r;
}

int CountLines(const std::string& s, absl::string_view prefix) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(s, '\n')) n += absl::StartsWith(line, prefix) ? 1 : 0;
  return n;
}

BankRunOptions Small() {
  BankRunOptions o;
  o.threads = 3;
  o.accounts = 8;
  o.duration = absl::Milliseconds(300);
  o.report_every = absl::Milliseconds(100);
  return o;
}

TEST(BankRunTest, TransfersKeepTheInvariant) {
  std::string printed;
  absl::StatusOr<BankRunResult> r = RunCapturing(Small(), &printed);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->invariant.ok()) << r->invariant;
  EXPECT_EQ(r->total, r->expected_total);
  EXPECT_EQ(r->expected_total, 8u * 1000);
  EXPECT_GT(r->committed, 0u);
  EXPECT_EQ(CountLines(printed, "t="), 3);
  EXPECT_EQ(CountLines(printed, "invariant: "), 1);
}

TEST(BankRunTest, InvariantHoldsWhenAMachineIsKilled) {
  BankRunOptions o = Small();
  o.kill = true;
  std::string printed;
  absl::StatusOr<BankRunResult> r = RunCapturing(o, &printed);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->invariant.ok()) << r->invariant;
  EXPECT_EQ(r->total, r->expected_total);
  EXPECT_EQ(CountLines(printed, "t="), 4);  // three progress lines and the kill
  EXPECT_TRUE(absl::StrContains(printed, "killed machine 3; recovered")) << printed;
}

TEST(BankRunTest, RejectsBadOptions) {
  BankRunOptions o = Small();
  o.fabric = "rdma";
  std::string printed;
  EXPECT_TRUE(absl::StrContains(RunCapturing(o, &printed).status().message(), "fabric"));
  o = Small();
  o.kill = true;
  o.replicas = 1;
  EXPECT_TRUE(absl::StrContains(RunCapturing(o, &printed).status().message(), "kill"));
  o = Small();
  o.accounts = 1;
  EXPECT_TRUE(absl::StrContains(RunCapturing(o, &printed).status().message(), "accounts"));
}

}  // namespace
}  // namespace dctk::farm::workload
