// RingSender: the sending end of a FaRM message ring (ring_format.h). It
// writes each message into the receiver's ring with one one-sided WRITE and
// tracks free space with a copy of the receiver's head that lags: the
// receiver writes its head into the sender's memory only after consuming half
// the ring, so the sender never overwrites a message that was not handled,
// and Send fails with ResourceExhausted (back-pressure) when the ring is full.
//
// Send waits for the WRITE's completion (one queue per sender, no other ops
// outstanding on it). One thread per sender.
//
// Example:
//   // `head_word` is 8 bytes of this machine's registered memory that the
//   // receiver was told to write its head into.
//   auto sender = RingSender<ShmFabric>::Create(fabric, queue, {2, ring_key, 0}, ring_size, head_word);
//   absl::Status s = (*sender)->Send(payload);   // ResourceExhausted: try later
#ifndef DCTK_FARM_MSG_RING_SENDER_H_
#define DCTK_FARM_MSG_RING_SENDER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/sync.h"
#include "farm/msg/ring_format.h"

namespace dctk::farm::msg {

template <typename F>
  requires fabric::Fabric<F>
class RingSender {
 public:
  static absl::StatusOr<std::unique_ptr<RingSender>> Create(F& fabric, typename F::Queue* queue,
                                                            fabric::RemoteAddress ring,
                                                            uint64_t ring_size,
                                                            const uint64_t* head_word) {
    if (ring_size < 64 || ring_size % kRecordAlign != 0 || ring.offset % kRecordAlign != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "message ring of ", ring_size, " bytes at ", ring.ToString(), ": needs >= 64 bytes, 16-aligned"));
    }
    std::unique_ptr<RingSender> s(new RingSender(queue, ring, ring_size, head_word));
    absl::Status r = fabric.RegisterLocal(s->staging_.data(), s->staging_.size() * 8);
    if (!r.ok()) return r;
    return s;
  }

  // Largest payload one message may carry. A record (plus the pad before it
  // at a wrap, smaller than the record) is then at most half the ring, so a
  // sender that finds the ring full has more than half a ring unconsumed, and
  // the receiver's lazy head report (after half a ring) always unblocks it.
  uint64_t max_message() const {
    return std::min<uint64_t>(kMaxMessageBytes, size_ / 4 - 16);
  }

  absl::Status Send(absl::Span<const uint8_t> payload) {
    if (payload.size() > max_message()) {
      return absl::InvalidArgumentError(absl::StrCat("message of ", payload.size(),
                                                     " bytes exceeds the ring's limit of ", max_message()));
    }
    const uint64_t bytes = RecordBytes(payload.size());
    const uint64_t pos = tail_ % size_;
    const uint64_t pad = pos + bytes > size_ ? size_ - pos : 0;  // skip to the start
    if (!HasRoom(pad + bytes)) {
      head_copy_ = __atomic_load_n(head_word_, __ATOMIC_ACQUIRE);  // refresh the lagging copy
      if (!HasRoom(pad + bytes)) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "message ring at ", ring_.ToString(), " full: ", tail_ - head_copy_, " of ", size_,
            " bytes unconsumed"));
      }
    }
    if (pad != 0) {
      const uint64_t header = MakeHeader(seq_, 0, RecordKind::kPad);
      absl::Status s = fabric::SyncWrite(*queue_, At(pos), &header, 8);
      if (!s.ok()) return s;
      seq_ = NextSeq(seq_);
      tail_ += pad;
    }
    auto* rec = reinterpret_cast<uint8_t*>(staging_.data());
    std::memset(rec, 0, bytes);
    const uint64_t header = MakeHeader(seq_, static_cast<uint32_t>(payload.size()), RecordKind::kMessage);
    const uint64_t trailer = seq_;
    std::memcpy(rec, &header, 8);
    if (!payload.empty()) std::memcpy(rec + 8, payload.data(), payload.size());
    std::memcpy(rec + bytes - 8, &trailer, 8);
    absl::Status s = fabric::SyncWrite(*queue_, At(tail_ % size_), rec, static_cast<uint32_t>(bytes));
    if (!s.ok()) return s;
    seq_ = NextSeq(seq_);
    tail_ += bytes;
    ++sent_;
    return absl::OkStatus();
  }

  uint64_t sent() const { return sent_; }

 private:
  RingSender(typename F::Queue* queue, fabric::RemoteAddress ring, uint64_t size, const uint64_t* head_word)
      : queue_(queue), ring_(ring), size_(size), head_word_(head_word), staging_(size / 8) {}

  bool HasRoom(uint64_t bytes) const { return tail_ + bytes - head_copy_ <= size_; }
  fabric::RemoteAddress At(uint64_t pos) const { return {ring_.machine, ring_.key, ring_.offset + pos}; }

  typename F::Queue* queue_;
  const fabric::RemoteAddress ring_;
  const uint64_t size_;
  const uint64_t* head_word_;
  uint64_t tail_ = 0;       // bytes ever written
  uint64_t head_copy_ = 0;  // bytes the receiver reported consumed
  uint32_t seq_ = 1;
  uint64_t sent_ = 0;
  std::vector<uint64_t> staging_;
};

}  // namespace dctk::farm::msg

#endif  // DCTK_FARM_MSG_RING_SENDER_H_
