// RingReceiver: the receiving end of a FaRM message ring (ring_format.h). The
// ring lives in this machine's registered memory; Poll() reads it directly
// (no fabric operation, no sender CPU), hands each complete message to a
// callback, zeroes it, and returns its head to the sender lazily: one WRITE of
// the head into the sender's memory after each half ring consumed.
//
// One thread per receiver; the callback's span is valid during the call only.
//
// Example:
//   auto rx = RingReceiver<ShmFabric>::Create(fabric, queue, ring_base, ring_size,
//                                             /*sender_head=*/{1, key, offset});
//   absl::StatusOr<int> n = (*rx)->Poll([](absl::Span<const uint8_t> m) { ... }, 32);
#ifndef DCTK_FARM_MSG_RING_RECEIVER_H_
#define DCTK_FARM_MSG_RING_RECEIVER_H_

#include <cstdint>
#include <cstring>
#include <memory>

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
class RingReceiver {
 public:
  static absl::StatusOr<std::unique_ptr<RingReceiver>> Create(F& fabric, typename F::Queue* queue,
                                                              uint8_t* ring, uint64_t ring_size,
                                                              fabric::RemoteAddress sender_head) {
    if (ring_size < 64 || ring_size % kRecordAlign != 0 ||
        reinterpret_cast<uintptr_t>(ring) % kRecordAlign != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("message ring of ", ring_size, " bytes: needs >= 64 bytes, 16-aligned"));
    }
    std::unique_ptr<RingReceiver> r(new RingReceiver(queue, ring, ring_size, sender_head));
    absl::Status s = fabric.RegisterLocal(&r->head_out_, sizeof(r->head_out_));
    if (!s.ok()) return s;
    return r;
  }

  // Delivers up to `max` complete messages in order; returns how many.
  template <typename Fn>
  absl::StatusOr<int> Poll(Fn&& fn, int max) {
    int n = 0;
    while (n < max) {
      const uint64_t pos = head_ % size_;
      const uint64_t header = Load(pos);
      if (HeaderSeq(header) != seq_) break;  // nothing (complete) yet
      if (HeaderKind(header) == RecordKind::kPad) {
        Store(pos, 0);
        Consume(size_ - pos);
        continue;
      }
      const uint32_t len = HeaderLength(header);
      const uint64_t bytes = RecordBytes(len);
      if (HeaderKind(header) != RecordKind::kMessage || pos + bytes > size_) {
        return absl::DataLossError(absl::StrCat("message ring: corrupt record header ", header,
                                                " at offset ", pos));
      }
      if (Load(pos + bytes - 8) != seq_) break;  // trailer not written yet
      fn(absl::Span<const uint8_t>(ring_ + pos + 8, len));
      std::memset(ring_ + pos, 0, bytes);
      ++n;
      ++received_;
      Consume(bytes);
    }
    if (head_ - reported_ >= size_ / 2) {
      head_out_ = head_;
      absl::Status s = fabric::SyncWrite(*queue_, sender_head_, &head_out_, 8);
      if (!s.ok()) return s;
      reported_ = head_;
      ++head_updates_;
    }
    return n;
  }

  uint64_t received() const { return received_; }
  uint64_t head_updates() const { return head_updates_; }

 private:
  RingReceiver(typename F::Queue* queue, uint8_t* ring, uint64_t size, fabric::RemoteAddress sender_head)
      : queue_(queue), ring_(ring), size_(size), sender_head_(sender_head) {}

  uint64_t Load(uint64_t pos) const {
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(ring_ + pos), __ATOMIC_ACQUIRE);
  }
  void Store(uint64_t pos, uint64_t v) {
    __atomic_store_n(reinterpret_cast<uint64_t*>(ring_ + pos), v, __ATOMIC_RELAXED);
  }
  void Consume(uint64_t bytes) {
    head_ += bytes;
    seq_ = NextSeq(seq_);
  }

  typename F::Queue* queue_;
  uint8_t* ring_;
  const uint64_t size_;
  const fabric::RemoteAddress sender_head_;
  uint64_t head_ = 0;      // bytes consumed
  uint64_t reported_ = 0;  // head last written to the sender
  uint32_t seq_ = 1;
  uint64_t received_ = 0;
  uint64_t head_updates_ = 0;
  uint64_t head_out_ = 0;  // registered source of the head WRITE
};

}  // namespace dctk::farm::msg

#endif  // DCTK_FARM_MSG_RING_RECEIVER_H_
