// A farmd machine's recovery steps that carry decisions (RECOVER_LOCKS,
// RESOLVE) refuse malformed ones whole, naming the step, the machine and the
// decision, and apply nothing of them.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/cm_service.h"
#include "farm/server/control.pb.h"
#include "farm/server/machine_service.h"
#include "farm/tx/wire.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

using fabric::ShmFabric;

class MachineDecisionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CmServiceOptions co;
    co.replicas = 1;
    co.region_size = 1 << 20;
    co.regions = 1;
    co.lease_ms = 60'000;
    co.expected_machines = {1};
    cm_ = std::make_unique<CmService>(co);
    ASSERT_TRUE(cm_->Start("127.0.0.1").ok());
    auto m = MachineService<ShmFabric>::Start(
        {.id = 1, .cm_address = cm_->address()},
        [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
    ASSERT_TRUE(m.ok()) << m.status();
    machine_ = std::move(*m);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (cm_->config().regions_size() == 0 || cm_->config().regions(0).replicas(0).key() == 0) {
      ASSERT_LT(absl::Now(), deadline) << "region never placed";
      absl::SleepFor(absl::Milliseconds(5));
    }
    auto ch = ControlChannel::Connect(cm_->config().machines(0).control());
    ASSERT_TRUE(ch.ok()) << ch.status();
    channel_ = std::move(*ch);
  }

  absl::Status Send(Method step, const Resolutions& rs) {
    return channel_->Call(step, rs.SerializeAsString(), absl::Seconds(5)).status();
  }

  // A decision of transaction `tx` that writes region 1.
  static Resolution Decision(uint64_t tx, bool commit) {
    Resolution r;
    r.set_tx(tx);
    r.set_commit(commit);
    const tx::WriteEntry e{GlobalAddress(1, 0), 1, tx::EntryKind::kWrite, 64, "x"};
    r.set_entries(tx::Encode(tx::LockRequest{0, tx, {}, {e}}));
    return r;
  }

  std::unique_ptr<CmService> cm_;
  std::unique_ptr<MachineService<ShmFabric>> machine_;
  std::unique_ptr<ControlChannel> channel_;
};

TEST_F(MachineDecisionsTest, MalformedEntriesAreRefusedWholeNamingTheDecision) {
  for (Method step : {RECOVER_LOCKS, RESOLVE}) {
    Resolutions rs;
    *rs.add_resolutions() = Decision(42, true);
    Resolution* bad = rs.add_resolutions();
    *bad = Decision(43, true);
    bad->set_entries("\x01\x02garbage");
    const absl::Status s = Send(step, rs);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    const std::string says = absl::StrCat(
        Method_Name(step), " at machine 1: resolution 1 (transaction 43): entries: malformed");
    EXPECT_NE(s.message().find(says), std::string::npos) << s;
    // Decision 42 was not applied either: nothing is known of it.
    TxList ask, known;
    ask.add_tx(42);
    absl::StatusOr<std::string> reply =
        channel_->Call(KNOWN, ask.SerializeAsString(), absl::Seconds(5));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(known.ParseFromString(*reply));
    EXPECT_EQ(known.tx_size(), 0) << Method_Name(step);
  }
  const absl::Status s = channel_->Call(RECOVER_LOCKS, "\xff\xff\xff", absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("RECOVER_LOCKS at machine 1: malformed"), std::string::npos) << s;
}

TEST_F(MachineDecisionsTest, LockRecoveryRefusesAnAbort) {
  Resolutions rs;
  *rs.add_resolutions() = Decision(44, false);
  const absl::Status s = Send(RECOVER_LOCKS, rs);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("machine 1: transaction 44: not a decided commit"), std::string::npos)
      << s;
}

}  // namespace
}  // namespace dctk::farm::server
