#include "farm/server/cm_service.h"

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "farm/server/control.pb.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

// The configuration state living outside the service, as on CM replicas.
class ExternalState {
 public:
  CmExecutor Executor() {
    return [this](const cm::Command& c) -> absl::StatusOr<cm::Result> {
      absl::MutexLock l(&mu_);
      if (down_) return absl::UnavailableError("replicas unreachable");
      ++commands_;
      return state_.Execute(c);
    };
  }
  void SetDown(bool down) {
    absl::MutexLock l(&mu_);
    down_ = down;
  }
  int commands() {
    absl::MutexLock l(&mu_);
    return commands_;
  }
  cm::Configuration config() {
    absl::MutexLock l(&mu_);
    return state_.config();
  }

 private:
  absl::Mutex mu_;
  cm::ConfigState state_;
  bool down_ = false;
  int commands_ = 0;
};

cm::Result Call(const CmService& cm, const cm::Command& c) {
  absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(cm.address());
  EXPECT_TRUE(ch.ok()) << ch.status();
  absl::StatusOr<std::string> reply =
      (*ch)->Call(CM_COMMAND, c.SerializeAsString(), absl::Seconds(5));
  EXPECT_TRUE(reply.ok()) << reply.status();
  cm::Result r;
  EXPECT_TRUE(r.ParseFromString(*reply));
  return r;
}

CmServiceOptions Options(ExternalState& state, int regions) {
  CmServiceOptions o;
  o.replicas = 1;
  o.region_size = 1 << 20;
  o.regions = regions;
  o.lease_ms = 60'000;
  o.expected_machines = {1};
  o.now_ms = [] { return int64_t{1000}; };
  o.execute = state.Executor();
  return o;
}

TEST(CmServiceExecutor, CommandsRunOnTheExternalState) {
  ExternalState state;
  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  EXPECT_EQ(state.config().replicas(), 1u);  // Start issued Init there

  cm::Result joined = Call(cm, cm::JoinCommand(7, "endpoint-7", "", /*now_ms=*/0));
  EXPECT_EQ(joined.code(), 0) << joined.message();
  ASSERT_EQ(state.config().machines_size(), 1);
  EXPECT_EQ(state.config().machines(0).id(), 7u);
  EXPECT_EQ(cm.config().id(), state.config().id());
}

TEST(CmServiceExecutor, UnreachableStateIsAnErrorResultNotACrash) {
  ExternalState state;
  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  state.SetDown(true);
  cm::Result r = Call(cm, cm::RenewCommand(7, 0));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_NE(r.message().find("replicas unreachable"), std::string::npos);
}

TEST(CmServiceExecutor, StartFailsWhenInitCannotRun) {
  ExternalState state;
  state.SetDown(true);
  CmService cm(Options(state, /*regions=*/1));
  absl::Status s = cm.Start("127.0.0.1");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("Init"), std::string::npos) << s;
}

TEST(CmServiceExecutor, RestartOverPlacedRegionsIsReadyAtOnce) {
  ExternalState state;
  CmExecutor run = state.Executor();
  ASSERT_TRUE(run(cm::InitCommand(1, 1 << 20, 60'000)).ok());
  ASSERT_TRUE(run(cm::JoinCommand(1, "endpoint-1", "", 1000)).ok());
  ASSERT_EQ(run(cm::CreateRegionCommand())->code(), 0);

  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  cm::Result get = Call(cm, cm::GetCommand());  // refused while still starting
  EXPECT_EQ(get.code(), 0) << get.message();
  EXPECT_EQ(get.config().regions_size(), 1);
}

TEST(CmServiceExecutor, RestartWithOtherParametersIsRefused) {
  ExternalState state;
  ASSERT_TRUE(state.Executor()(cm::InitCommand(3, 1 << 20, 60'000)).ok());
  CmService cm(Options(state, /*regions=*/1));
  absl::Status s = cm.Start("127.0.0.1");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("replicas=3"), std::string::npos) << s;
}

}  // namespace
}  // namespace dctk::farm::server
