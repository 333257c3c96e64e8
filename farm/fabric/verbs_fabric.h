// VerbsFabric: the FaRM fabric on real RDMA hardware through libibverbs.
//
// One VerbsFabric per machine opens the device, allocates a protection domain,
// registers regions (ibv_reg_mr with remote read/write/atomic access) and runs
// a small TCP connection manager that answers two requests: "connect a queue
// pair" (exchange QP number, LID, GID and PSN, then bring both RC QPs to RTS)
// and "describe region key K" (virtual address, rkey, size).
//
// Each Queue owns a completion queue and, per remote machine, an RC queue pair
// made on first use. A Queue caches region descriptions, so bounds and key
// checks happen locally before posting: an invalid key or out-of-bounds range
// completes with an error without any packet being sent. A QP that completes
// with an error (e.g. a key deregistered since it was cached) is replaced on
// the next post, as RC QPs enter the error state for good.
//
// This host has no RDMA device; the backend compiles everywhere and its tests
// skip when VerbsDeviceCount() == 0. fabric_select.h picks it automatically
// when a device exists.
//
// Example:
//   auto f = VerbsFabric::Create({.machine_id = 1});   // first device, port 1
//   (*f)->Connect(2, "10.0.0.2:41234");
//   auto q = (*f)->CreateQueue();
//   (*f)->RegisterLocal(buf, sizeof(buf));
//   (*q)->PostRead({2, key, 0}, buf, 64, /*wr_id=*/1);
#ifndef DCTK_FARM_FABRIC_VERBS_FABRIC_H_
#define DCTK_FARM_FABRIC_VERBS_FABRIC_H_

#include <atomic>
#include <cstdint>
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
#include "farm/fabric/fabric.h"

struct ibv_context;
struct ibv_pd;
struct ibv_cq;
struct ibv_qp;
struct ibv_mr;

namespace dctk::farm::fabric {

// Number of RDMA devices libibverbs sees (0 when there is none or no driver).
int VerbsDeviceCount();

namespace internal {
struct QpInfo;
}

class VerbsFabric final {
 public:
  struct Options {
    MachineId machine_id = 0;
    std::string device;       // empty: the first device
    uint8_t port = 1;
    int gid_index = 0;        // RoCE needs a GID; InfiniBand works with LIDs
    std::string listen_host = "127.0.0.1";
    uint32_t max_machines = 256;
    uint32_t queue_depth = 256;    // Pages for regions of 2 MiB or more (internal/region_memory.h): hugetlb
    // or THP memory lets the NIC map the region with large page entries.
    HugePages huge_pages = HugePages::kAuto;
  };

  static absl::StatusOr<std::unique_ptr<VerbsFabric>> Create(const Options& options);
  ~VerbsFabric();
  VerbsFabric(const VerbsFabric&) = delete;
  VerbsFabric& operator=(const VerbsFabric&) = delete;

  MachineId machine_id() const { return options_.machine_id; }
  // "host:port" of this machine's connection manager.
  const std::string& endpoint() const { return endpoint_; }
  // Records where `machine`'s connection manager listens; queue pairs to it
  // are made by each Queue on first use.
  absl::Status Connect(MachineId machine, absl::string_view endpoint);

  absl::StatusOr<MemoryRegion> Register(uint64_t size);
  absl::Status RegisterLocal(void* addr, size_t size);
  absl::Status Deregister(RegionKey key);

  class Queue;
  absl::StatusOr<std::unique_ptr<Queue>> CreateQueue();

 private:
  struct Region {
    RegionKey key;
    void* base;
    uint64_t size;
    ibv_mr* mr;
  };
  struct LocalMr {
    uintptr_t begin, end;
    uint32_t lkey;
    ibv_mr* mr;
  };

  explicit VerbsFabric(const Options& options);
  absl::Status Open();
  void ServeLoop();
  void Serve(int fd);
  // Creates an RC QP on `cq` and moves it to INIT; fills `self` with its info.
  absl::StatusOr<ibv_qp*> CreateQp(ibv_cq* cq, internal::QpInfo* self);
  absl::Status ConnectQp(ibv_qp* qp, uint32_t local_psn, const internal::QpInfo& remote);
  absl::StatusOr<std::string> EndpointOf(MachineId machine);
  // Finds the lkey of registered memory covering [addr, addr+len).
  bool FindLkey(const void* addr, size_t len, uint32_t* lkey);

  const Options options_;
  std::string endpoint_;
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_cq* passive_cq_ = nullptr;  // for QPs this machine only serves
  uint16_t lid_ = 0;
  uint8_t gid_[16] = {};
  int mtu_ = 0;
  int max_rd_atomic_ = 1;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread serve_thread_;

  absl::Mutex mu_;
  RegionKey next_key_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<RegionKey, Region> regions_ ABSL_GUARDED_BY(mu_);
  std::vector<LocalMr> local_mrs_ ABSL_GUARDED_BY(mu_);
  std::vector<ibv_qp*> passive_qps_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<MachineId, std::string> endpoints_ ABSL_GUARDED_BY(mu_);

  friend class Queue;
};

// A per-thread completion queue with one RC queue pair per remote machine.
class VerbsFabric::Queue final {
 public:
  ~Queue();
  absl::Status PostRead(const RemoteAddress& from, void* local, uint32_t length, uint64_t wr_id);
  absl::Status PostWrite(const RemoteAddress& to, const void* local, uint32_t length,
                         uint64_t wr_id);
  absl::Status PostCompareAndSwap(const RemoteAddress& at, uint64_t expected, uint64_t desired,
                                  uint64_t* old_value, uint64_t wr_id);
  int PollCompletions(absl::Span<Completion> out);
  const QueueStats& stats() const { return stats_; }

 private:
  friend class VerbsFabric;
  struct RemoteMr {
    uint64_t addr;
    uint64_t size;
    uint32_t rkey;
  };
  struct Connection {
    ibv_qp* qp = nullptr;
    bool broken = false;
  };
  struct Pending {
    Completion completion;
    bool in_use = false;
  };

  Queue(VerbsFabric* fabric, ibv_cq* cq);
  // Checks the target and returns the QP and remote MR to post to, or the
  // completion code the operation fails with locally.
  CompletionCode Prepare(const RemoteAddress& ra, uint64_t length, ibv_qp** qp, RemoteMr* mr);
  absl::StatusOr<ibv_qp*> ConnectionTo(MachineId machine);
  absl::StatusOr<RemoteMr> Describe(MachineId machine, RegionKey key);
  absl::Status Post(OpType op, const RemoteAddress& ra, void* local, uint32_t length,
                    uint64_t wr_id, uint64_t compare, uint64_t swap);
  void CompleteLocally(OpType op, const RemoteAddress& ra, uint32_t length, uint64_t wr_id,
                       CompletionCode code);

  VerbsFabric* fabric_;
  ibv_cq* cq_;
  absl::flat_hash_map<MachineId, Connection> connections_;
  absl::flat_hash_map<uint64_t, RemoteMr> mr_cache_;  // (machine << 32 | key)
  std::vector<Pending> pending_;
  uint32_t next_slot_ = 0;
  uint32_t outstanding_ = 0;
  std::vector<Completion> local_done_;  // failed before posting; polled first
  size_t local_head_ = 0;
  QueueStats stats_;
  uint32_t last_lkey_ = 0;
  uintptr_t last_begin_ = 0, last_end_ = 0;
};

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_VERBS_FABRIC_H_
