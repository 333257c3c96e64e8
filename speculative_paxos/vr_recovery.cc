// VR recovery (Liskov & Cowling, "Viewstamped Replication Revisited", 4.3) for
// the leader-based baseline: a replica restarted without state learns the
// newest view from f+1 normal replicas (the view's leader among them), copies
// the leader's log up to the leader's end at that time, and only then becomes
// normal and takes part in view changes.
#include <algorithm>

#include "absl/time/clock.h"
#include "glog/logging.h"
#include "speculative_paxos/vr_replica.h"

namespace dctk::spaxos {

void VrReplica::BeginRecovery() {
  VLOG(1) << "vr replica " << index_ << " begins recovery";
  recovering_ = true;
  catching_up_ = false;
  normal_ = false;
  // Unique per attempt, so answers to an earlier attempt are not counted.
  recovery_nonce_ = std::max(recovery_nonce_ + 1,
                             static_cast<uint64_t>(absl::ToUnixNanos(transport_->Now())));
  recovery_target_ = 0;
  recovery_responses_.clear();
  heartbeat_.Stop();
  view_timeout_.Stop();
  resend_.Start();
  SendRecovery();
}

void VrReplica::SendRecovery() {
  VrRecovery m;
  m.set_replica(index_);
  m.set_nonce(recovery_nonce_);
  for (uint32_t r = 0; r < n(); ++r) SendTo(r, m);
}

void VrReplica::HandleRecovery(const VrRecovery& m) {
  if (recovering_ || !normal_ || m.replica() >= n() || m.replica() == index_) return;
  VrRecoveryResponse resp;
  resp.set_view(view_);
  resp.set_replica(index_);
  resp.set_nonce(m.nonce());
  if (IsLeader()) {
    resp.set_leader(true);
    resp.set_log_end(log_.end());
    // It holds nothing now: resend the log from slot 1 (OnResend, in chunks).
    acked_[m.replica()] = 0;
  }
  SendTo(m.replica(), resp);
}

void VrReplica::HandleRecoveryResponse(const VrRecoveryResponse& m) {
  if (!recovering_ || catching_up_ || m.nonce() != recovery_nonce_ || m.replica() >= n()) return;
  recovery_responses_[m.replica()] = m;
  if (static_cast<int>(recovery_responses_.size()) < config_.f() + 1) return;
  uint64_t view = 0;
  for (const auto& [r, resp] : recovery_responses_) view = std::max(view, resp.view());
  auto leader = recovery_responses_.find(LeaderOf(view));
  if (leader == recovery_responses_.end() || leader->second.view() != view ||
      !leader->second.leader()) {
    return;  // wait for the newest view's leader
  }
  view_ = view;
  catching_up_ = true;
  recovery_target_ = leader->second.log_end();
  view_timeout_.Start();
  MaybeFinishRecovery();
}

bool VrReplica::RecoveringAccepts(uint64_t view) {
  if (!catching_up_ || view < view_) return false;
  if (view > view_) {
    BeginRecovery();  // the view moved on while we copied: learn it again
    return false;
  }
  return true;
}

void VrReplica::MaybeFinishRecovery() {
  if (!catching_up_ || log_.end() < recovery_target_) return;
  VLOG(1) << "vr replica " << index_ << " recovered in view " << view_ << " at slot "
          << log_.end();
  recovering_ = false;
  catching_up_ = false;
  recovery_responses_.clear();
  last_normal_view_ = view_;
  ++stats_.recoveries;
  EnterNormal();
}

}  // namespace dctk::spaxos
