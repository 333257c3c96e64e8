// NetFabric: FaRM's one-sided operations carried over TCP, for machines in
// different network namespaces or hosts (no RDMA). Each machine runs one
// "NIC" progress thread that owns its registered regions' remote access: it
// accepts connections, executes READ / WRITE / CAS requests against local
// memory (with the same 8-byte atomic, ascending-order copies as the shm
// fabric, so torn reads and per-line versions behave identically) and sends
// the responses. Application threads of the target never run for a one-sided
// operation; the initiator's Queue sends requests and turns responses into
// Completions when polled.
//
// Why a small TCP progress thread rather than libfabric's tcp provider: see
// farm/README.md ("net fabric: the choice"), measured on this machine.
//
// Waiting without spinning (Options::blocking_waits, on by default): a thread
// waiting for its completions sleeps in ppoll() on its connections
// (Queue::WaitForCompletions, used by sync.h), and a thread polling a message
// ring in its own memory sleeps on a Doorbell (doorbell.h) that the progress
// thread rings after writing into the ring's region (AttachDoorbell). On a
// machine with fewer cores than polling threads, spinning threads would take
// the CPU the progress threads need to move the data (farm/README.md).
//
// Example:
//   auto a = NetFabric::Create({.machine_id = 1});   // listens on 127.0.0.1:0
//   auto b = NetFabric::Create({.machine_id = 2});
//   auto r = (*b)->Register(1 << 20);
//   (*a)->Connect(2, (*b)->endpoint());               // "127.0.0.1:PORT"
//   auto q = (*a)->CreateQueue();
//   (*q)->PostRead({2, r->key, 0}, buf, 64, /*wr_id=*/1);
#ifndef DCTK_FARM_FABRIC_NET_FABRIC_H_
#define DCTK_FARM_FABRIC_NET_FABRIC_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "farm/fabric/doorbell.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/internal/net_wire.h"

namespace dctk::farm::fabric {

class NetFabric final {
 public:
  struct Options {
    MachineId machine_id = 0;
    std::string listen_host = "127.0.0.1";
    uint32_t max_regions = 4096;
    uint32_t queue_depth = 256;
    // The progress thread busy-polls this long after its last request before
    // blocking (0: always block). Trades an idle core for latency under load.
    uint32_t poll_spin_us = 0;
    // Waiters sleep (WaitForCompletions blocks, doorbells can be attached,
    // idle PollCompletions loops sleep); false: they spin, the behaviour
    // before doorbells (kept as a benchmark baseline).
    bool blocking_waits = true;
    // Adaptive polling (with blocking_waits): after this many PollCompletions
    // calls in a row that found nothing while operations are outstanding,
    // each such call sleeps in ppoll() until a response arrives or
    // `poll_wait_us` passes. So a caller's poll loop spins briefly, then
    // stops taking the CPU its responses need (0: PollCompletions never sleeps).
    uint32_t idle_polls_before_wait = 8;
    uint32_t poll_wait_us = 1000;
    // Pages for regions of 2 MiB or more (internal/region_memory.h).
    HugePages huge_pages = HugePages::kAuto;
  };

  static absl::StatusOr<std::unique_ptr<NetFabric>> Create(const Options& options);
  ~NetFabric();
  NetFabric(const NetFabric&) = delete;
  NetFabric& operator=(const NetFabric&) = delete;

  MachineId machine_id() const { return options_.machine_id; }
  const std::string& endpoint() const { return endpoint_; }
  // Records where `machine`'s progress thread listens; queues connect lazily.
  absl::Status Connect(MachineId machine, absl::string_view endpoint);

  absl::StatusOr<MemoryRegion> Register(uint64_t size);
  absl::Status RegisterLocal(void*, size_t) { return absl::OkStatus(); }
  absl::Status Deregister(RegionKey key);

  // A doorbell owned by this fabric (valid until it is destroyed), for
  // AttachDoorbell. FailedPrecondition if !Options::blocking_waits.
  absl::StatusOr<Doorbell*> NewDoorbell();
  // Rings `bell` after every progress-thread pass that executed a remote WRITE
  // or CAS into the registered region containing `addr` (replacing any bell
  // attached before; nullptr detaches). NotFound if no live region holds it.
  absl::Status AttachDoorbell(const void* addr, Doorbell* bell);

  class Queue;
  absl::StatusOr<std::unique_ptr<Queue>> CreateQueue();

 private:
  struct Mapping {
    uint8_t* base = nullptr;
    uint64_t size = 0;
    std::atomic<bool> live{true};
    std::atomic<Doorbell*> bell{nullptr};
  };
  struct Peer;  // a connection served by the progress thread

  explicit NetFabric(const Options& options);
  absl::Status Start();
  void ProgressLoop();
  // Executes complete requests in peer's input; false if the peer must go.
  bool ServeInput(Peer* peer);
  bool FlushOutput(Peer* peer);
  absl::StatusOr<std::string> EndpointOf(MachineId machine);

  const Options options_;
  std::string endpoint_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  std::thread progress_thread_;
  std::unique_ptr<std::atomic<Mapping*>[]> regions_;

  absl::Mutex mu_;
  RegionKey next_key_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::unique_ptr<Mapping>> owned_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Doorbell>> bells_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<MachineId, std::string> endpoints_ ABSL_GUARDED_BY(mu_);

  friend class Queue;
};

// A per-thread queue: one TCP connection per remote machine, requests
// answered in order. Not thread-safe.
class NetFabric::Queue final {
 public:
  ~Queue();
  absl::Status PostRead(const RemoteAddress& from, void* local, uint32_t length, uint64_t wr_id);
  absl::Status PostWrite(const RemoteAddress& to, const void* local, uint32_t length,
                         uint64_t wr_id);
  absl::Status PostCompareAndSwap(const RemoteAddress& at, uint64_t expected, uint64_t desired,
                                  uint64_t* old_value, uint64_t wr_id);
  // Never sleeps in the first `idle_polls_before_wait` empty calls in a row
  // (see Options), then may sleep up to `poll_wait_us` waiting for a response.
  int PollCompletions(absl::Span<Completion> out);
  // Sleeps until a response to an outstanding operation may have arrived (or
  // a completion is already waiting), or `timeout` passes. Returns false at
  // once, without sleeping, if nothing is outstanding or the fabric's waits
  // spin (Options::blocking_waits); then the caller just polls again.
  bool WaitForCompletions(absl::Duration timeout);
  const QueueStats& stats() const { return stats_; }

 private:
  friend class NetFabric;
  struct Pending {
    Completion completion;
    void* local;  // READ destination or CAS old-value slot
  };
  struct Connection {
    int fd = -1;
    std::deque<Pending> pending;
    std::vector<uint8_t> in;
  };

  explicit Queue(NetFabric* fabric) : fabric_(fabric) {}
  absl::Status Post(internal::NetOp op, OpType type, const RemoteAddress& ra, void* local,
                    const void* payload, uint32_t length, uint64_t wr_id, uint64_t compare,
                    uint64_t swap);
  Connection* ConnectionTo(MachineId machine);
  // One pass: receives what arrived and returns the completions it makes.
  int PollOnce(absl::Span<Completion> out);
  // Parses complete responses; returns the number of completions written.
  int Drain(Connection* c, absl::Span<Completion> out);
  void Fail(Connection* c);

  NetFabric* fabric_;
  absl::flat_hash_map<MachineId, Connection> connections_;
  std::deque<Completion> local_done_;
  uint32_t outstanding_ = 0;
  uint32_t empty_polls_ = 0;  // PollCompletions in a row that found nothing
  QueueStats stats_;
};

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_NET_FABRIC_H_
