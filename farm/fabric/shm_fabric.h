// ShmFabric: the FaRM fabric emulated over shared memory between processes on
// one host. Each process (or each ShmFabric in a process) is one machine.
//
// Register() creates a memfd, maps it, and hands it to every connected peer
// over a unix socket (SCM_RIGHTS); peers map it too. A one-sided operation is
// then done entirely by the initiator's thread on its own mapping of the
// target's memory: the target's CPU never runs for it (the target process may
// be stopped). Reads and writes use 8-byte atomic accesses in ascending address
// order (internal/atomic_copy.h), so a read racing a writer can be torn across
// words and cache lines exactly as an RDMA read can; FaultOptions::adversarial
// yields between cache lines to make such races likely in tests.
//
// Operations run synchronously inside Post*() and leave a Completion to poll,
// so Post*() only fails (ResourceExhausted) when the completion queue is full.
// The control plane (connect, register) uses one accept thread and one thread
// that maps regions announced by peers; Register() returns only after every
// connected peer has mapped the new region.
//
// Region keys: a key is never handed out twice, but its slot (key % kSlots,
// the index into every peer's table of mappings) is reused once the key is
// deregistered, under the next generation (key + kSlots), so a machine
// registers and deregisters without bound with at most max_regions - 1
// regions at once. Why that is safe: Deregister returns only
// after every connected peer marked the old mapping dead (a peer that does
// not acknowledge is dropped: its control connection closes and it fails
// every operation to this machine from then on), and a peer hears of the
// slot's next region only after that, on the same connection. A peer
// operation that found the old mapping live before then may still copy
// through it: it lands in the old memory, which stays mapped (never
// unmapped, and its Mapping never freed), never in the new region. An
// operation that names the old key later finds the slot holding another key
// (or nothing) and fails with kInvalidKey, as an RDMA access with a stale
// rkey does. A slot whose next generation would not fit 32 bits is retired.
//
// Connections are one-way: a.Connect(b_id, b.endpoint()) lets `a` access b's
// regions. A machine can always access its own regions.
//
// Example:
//   auto a = ShmFabric::Create({.machine_id = 1});
//   auto b = ShmFabric::Create({.machine_id = 2});
//   absl::StatusOr<MemoryRegion> r = (*b)->Register(1 << 20);
//   (*a)->Connect(2, (*b)->endpoint());
//   auto q = (*a)->CreateQueue();
//   char buf[64];
//   (*q)->PostRead({2, r->key, 0}, buf, sizeof(buf), /*wr_id=*/7);
//   Completion c;
//   while ((*q)->PollCompletions(absl::MakeSpan(&c, 1)) == 0) {}
#ifndef DCTK_FARM_FABRIC_SHM_FABRIC_H_
#define DCTK_FARM_FABRIC_SHM_FABRIC_H_

#include <sched.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/internal/atomic_copy.h"
#include "farm/fabric/internal/region_memory.h"
#include "farm/fabric/internal/shm_control.h"

namespace dctk::farm::fabric {

class ShmFabric final {
 public:
  // A region key's slot is key % kSlots, its generation key / kSlots (class
  // comment); every fabric indexes its peers' regions by slot.
  static constexpr uint32_t kSlots = 4096;

  struct Options {
    MachineId machine_id = 0;
    // Machine ids must be below this; at most max_regions - 1 regions
    // registered at once (at most kSlots - 1).
    uint32_t max_machines = 256;
    uint32_t max_regions = kSlots;
    // Default fault injection for queues created by this fabric.
    FaultOptions faults;
    // Pages for regions of 2 MiB or more (internal/region_memory.h); which
    // one a region got is MemoryRegion::pages, a fallback is logged.
    HugePages huge_pages = HugePages::kAuto;
    // For tests: the kernel calls behind region memory (default: the real ones).
    internal::PageSystem* page_system = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<ShmFabric>> Create(const Options& options);
  ~ShmFabric();
  ShmFabric(const ShmFabric&) = delete;
  ShmFabric& operator=(const ShmFabric&) = delete;

  MachineId machine_id() const { return options_.machine_id; }
  // The name peers pass to Connect() (an abstract unix socket name).
  const std::string& endpoint() const { return endpoint_; }

  // Maps every region `machine` has registered, and follows its later
  // registrations. Fails if the endpoint answers with another machine id.
  // A machine id whose peer was lost (its process died: operations to it
  // complete with kRemoteError) can be connected again, e.g. to a restarted
  // process at a new endpoint; the lost peer's mappings stay until this
  // fabric is destroyed. AlreadyExists while the peer is still reachable.
  absl::Status Connect(MachineId machine, absl::string_view endpoint);

  // A zeroed region of at least `size` bytes (rounded up to pages; to 2 MiB
  // when huge pages back it).
  absl::StatusOr<MemoryRegion> Register(uint64_t size);
  // Local buffers need no registration on shm (kept for the Fabric concept).
  absl::Status RegisterLocal(void*, size_t) { return absl::OkStatus(); }
  // Later operations on `key` fail with kInvalidKey, here and at every peer
  // (once it returns, every connected peer has marked it dead); `key` is
  // never handed out again (its slot is: Register), and the memory stays
  // mapped until the fabric is destroyed.
  absl::Status Deregister(RegionKey key);

  class Queue;
  // Queues must be destroyed before their fabric.
  absl::StatusOr<std::unique_ptr<Queue>> CreateQueue();

 private:
  struct Mapping {
    RegionKey key = 0;  // the key it was registered under (its slot: key % kSlots)
    uint8_t* base = nullptr;
    uint64_t size = 0;
    std::atomic<bool> live{true};
  };
  struct Peer {
    MachineId id = 0;
    int fd = -1;  // control connection to the peer (-1 for self)
    std::atomic<bool> reachable{true};
    std::unique_ptr<std::atomic<Mapping*>[]> regions;
    std::vector<std::unique_ptr<Mapping>> owned;  // guarded by ShmFabric::map_mu_
  };
  struct LocalRegion {
    RegionKey key;
    int memfd;
    uint64_t size;
    PageKind pages;
  };
  struct Lookup {
    CompletionCode code;
    uint8_t* at;
  };

  explicit ShmFabric(const Options& options);
  absl::Status Start();
  void AcceptLoop();
  void FollowLoop();
  void ServeNewPeer(int fd);
  absl::Status MapAnnounced(Peer* peer, const internal::ControlMessage& msg, int memfd);
  // Whether `peer` is lost, waiting (bounded) for the follow thread to mark
  // it if its control connection already hung up.
  bool Lost(Peer* peer);
  // Sends `msg` (with `memfd`) to every accepted peer and waits for its ack;
  // peers that fail are dropped.
  void Announce(const internal::ControlMessage& msg, int memfd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reg_mu_);

  Lookup Resolve(const RemoteAddress& ra, uint64_t length) const {
    if (ra.machine >= options_.max_machines) return {CompletionCode::kUnknownMachine, nullptr};
    const Peer* peer = peers_[ra.machine].load(std::memory_order_acquire);
    if (peer == nullptr) return {CompletionCode::kUnknownMachine, nullptr};
    if (!peer->reachable.load(std::memory_order_relaxed)) {
      return {CompletionCode::kRemoteError, nullptr};
    }
    const Mapping* m = peer->regions[ra.key % kSlots].load(std::memory_order_acquire);
    // A key of a region deregistered since (its slot may hold a later one).
    if (m == nullptr || m->key != ra.key || !m->live.load(std::memory_order_relaxed)) {
      return {CompletionCode::kInvalidKey, nullptr};
    }
    if (length > m->size || ra.offset > m->size - length) {
      return {CompletionCode::kOutOfBounds, nullptr};
    }
    return {CompletionCode::kSuccess, m->base + ra.offset};
  }

  const Options options_;
  std::string endpoint_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;   // eventfd: tells both control threads to exit
  int epoll_fd_ = -1;  // FollowLoop's: wake_fd_ + outgoing connections
  std::unique_ptr<std::atomic<Peer*>[]> peers_;

  absl::Mutex reg_mu_;  // local registrations and accepted peers
  // Region keys (Register): slot + kSlots * generation. Slots never
  // used yet start at next_slot_; deregistered ones wait in free_slots_,
  // with the generation each was last used at.
  uint32_t next_slot_ ABSL_GUARDED_BY(reg_mu_) = 1;
  std::vector<RegionKey> free_slots_ ABSL_GUARDED_BY(reg_mu_);  // the slots' last keys
  std::vector<LocalRegion> local_ ABSL_GUARDED_BY(reg_mu_);
  std::vector<int> accepted_ ABSL_GUARDED_BY(reg_mu_);

  absl::Mutex map_mu_;  // peer objects and their mappings
  std::vector<std::unique_ptr<Peer>> owned_peers_ ABSL_GUARDED_BY(map_mu_);

  std::thread accept_thread_;
  std::thread follow_thread_;

  friend class Queue;
};

// A per-thread queue pair + completion queue. Not thread-safe.
class ShmFabric::Queue final {
 public:
  static constexpr uint32_t kDepth = 256;

  absl::Status PostRead(const RemoteAddress& from, void* local, uint32_t length, uint64_t wr_id) {
    if (Full()) return QueueFull();
    const Lookup l = fabric_->Resolve(from, length);
    if (l.code == CompletionCode::kSuccess) {
      if (faults_.adversarial) {
        internal::AtomicRead(l.at, static_cast<uint8_t*>(local), length, AdversaryDelay{this});
      } else {
        internal::AtomicRead(l.at, static_cast<uint8_t*>(local), length, internal::NoDelay{});
      }
    }
    Push(wr_id, OpType::kRead, l.code, length, from);
    return absl::OkStatus();
  }

  absl::Status PostWrite(const RemoteAddress& to, const void* local, uint32_t length,
                         uint64_t wr_id) {
    if (Full()) return QueueFull();
    const Lookup l = fabric_->Resolve(to, length);
    if (l.code == CompletionCode::kSuccess) {
      const auto* src = static_cast<const uint8_t*>(local);
      if (faults_.adversarial) {
        internal::AtomicWrite(l.at, src, length, AdversaryDelay{this});
      } else {
        internal::AtomicWrite(l.at, src, length, internal::NoDelay{});
      }
    }
    Push(wr_id, OpType::kWrite, l.code, length, to);
    return absl::OkStatus();
  }

  absl::Status PostCompareAndSwap(const RemoteAddress& at, uint64_t expected, uint64_t desired,
                                  uint64_t* old_value, uint64_t wr_id) {
    if (Full()) return QueueFull();
    Lookup l = fabric_->Resolve(at, 8);
    if (l.code == CompletionCode::kSuccess && (at.offset & 7) != 0) {
      l.code = CompletionCode::kMisaligned;
    }
    if (l.code == CompletionCode::kSuccess) {
      *old_value = internal::AtomicCompareAndSwap(l.at, expected, desired);
    }
    Push(wr_id, OpType::kCompareAndSwap, l.code, 8, at);
    return absl::OkStatus();
  }

  int PollCompletions(absl::Span<Completion> out) {
    int n = 0;
    while (n < static_cast<int>(out.size()) && head_ != tail_) {
      out[n++] = ring_[head_ % kDepth];
      ++head_;
    }
    return n;
  }

  const QueueStats& stats() const { return stats_; }

  void SetFaultOptions(const FaultOptions& faults) {
    faults_ = faults;
    rng_ = faults.seed | 1;
  }

 private:
  friend class ShmFabric;
  struct AdversaryDelay {
    Queue* q;
    void operator()() const { q->Delay(); }
  };

  explicit Queue(ShmFabric* fabric) : fabric_(fabric) { SetFaultOptions(fabric->options_.faults); }

  bool Full() const { return tail_ - head_ == kDepth; }
  static absl::Status QueueFull() {
    return absl::ResourceExhaustedError(
        "shm fabric: completion queue full (256 unpolled completions); poll before posting");
  }
  void Push(uint64_t wr_id, OpType op, CompletionCode code, uint32_t length,
            const RemoteAddress& remote) {
    Completion& c = ring_[tail_ % kDepth];
    c.wr_id = wr_id;
    c.op = op;
    c.code = code;
    c.length = length;
    c.remote = remote;
    ++tail_;
    ++stats_.posted;
    ++stats_.completed[static_cast<int>(code)];
  }
  void Delay() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const uint32_t spins = faults_.max_spin == 0 ? 0 : rng_ % faults_.max_spin;
    for (uint32_t i = 0; i < spins; ++i) asm volatile("" ::: "memory");
    if (rng_ & 1) sched_yield();
    if (faults_.on_line_boundary) faults_.on_line_boundary();
  }

  ShmFabric* fabric_;
  QueueStats stats_;
  FaultOptions faults_;
  uint64_t rng_ = 1;
  uint32_t head_ = 0;
  uint32_t tail_ = 0;
  std::array<Completion, kDepth> ring_;
};

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_SHM_FABRIC_H_
