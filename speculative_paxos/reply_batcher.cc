#include "speculative_paxos/reply_batcher.h"

namespace dctk::spaxos {

void ReplyBatcher::Send(const transport::Address& to, Reply* reply) {
  if (holds_ == 0) {
    (void)transport_->Send(sender_, to, *reply);
    return;
  }
  size_t i = 0;
  while (i < used_ && !(held_[i].first == to)) ++i;
  if (i == used_) {
    // Reuse a flushed batch (its cleared replies keep their buffers).
    if (used_ == held_.size()) {
      held_.emplace_back(to, ReplyBatch());
      held_bytes_.push_back(0);
    }
    held_[i].first = to;
    held_bytes_[i] = 0;
    ++used_;
  }
  const size_t bytes = reply->ByteSizeLong() + 4;
  if (held_bytes_[i] + bytes > max_bytes_ && held_[i].second.replies_size() > 0) {
    SendOut(to, &held_[i].second);
    held_bytes_[i] = 0;
  }
  held_[i].second.add_replies()->Swap(reply);
  held_bytes_[i] += bytes;
}

void ReplyBatcher::Flush() {
  for (size_t i = 0; i < used_; ++i) SendOut(held_[i].first, &held_[i].second);
  used_ = 0;
}

void ReplyBatcher::SendOut(const transport::Address& to, ReplyBatch* batch) {
  if (batch->replies_size() == 0) return;
  if (batch->replies_size() == 1) {
    (void)transport_->Send(sender_, to, batch->replies(0));
  } else {
    (void)transport_->Send(sender_, to, *batch);
  }
  batch->Clear();
}

}  // namespace dctk::spaxos
