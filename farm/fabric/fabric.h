// Fabric: the narrow, verbs-shaped interface FaRM uses to reach remote memory.
//
// A fabric instance is one machine's "NIC": it registers memory regions (each
// gets a RegionKey other machines use to name it), connects to other machines,
// and hands out per-thread Queues. A Queue posts one-sided READ, WRITE and
// 8-byte COMPARE-AND-SWAP operations against a RemoteAddress (machine, key,
// offset) and reports each one's outcome as a Completion, which the caller
// polls. The remote machine's CPU takes no part in a one-sided operation.
//
// Backends are concrete final classes satisfying the `Fabric` concept below;
// code that uses a fabric is a template on the backend, so the hot path makes
// no virtual call per operation (as eRPC does with its transports):
//   - ShmFabric   (shm_fabric.h): machines are processes on one host sharing
//                 memfd-backed regions; reads are 8-byte atomic loads in
//                 ascending address order, so torn reads happen as on RDMA.
//   - VerbsFabric (verbs_fabric.h): real RDMA through libibverbs, RC QPs.
// `ChooseFabricKind()` (fabric_select.h) picks verbs where a device exists.
//
// Rules every backend follows (the conformance suite checks them):
//   - A bad RegionKey, an out-of-bounds range, or a misaligned CAS completes
//     with an error code and touches no memory.
//   - CAS needs an 8-byte-aligned offset; the old value goes to *old_value.
//   - Local buffers must lie in memory registered with RegisterLocal() (or in
//     a Register()ed region): verbs enforces it, shm does not check.
//   - A Queue is used by one thread at a time; the fabric itself is thread-safe.
//   - Connect(machine, endpoint) gives this machine access to that machine's
//     regions (one way); endpoint() is what peers pass to Connect.
//
// Example (T is ShmFabric or VerbsFabric):
//   template <typename T> requires Fabric<T>
//   absl::Status ReadHeader(T& fabric, RemoteAddress at, uint64_t* out) {
//     auto q = fabric.CreateQueue();
//     if (!q.ok()) return q.status();
//     return SyncRead(**q, at, out, sizeof(*out));   // sync.h
//   }
#ifndef DCTK_FARM_FABRIC_FABRIC_H_
#define DCTK_FARM_FABRIC_FABRIC_H_

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dctk::farm::fabric {

using MachineId = uint32_t;
// Names a registered region on one machine; assigned by that machine, never
// reused while the fabric lives. 0 is never a valid key.
using RegionKey = uint32_t;

struct RemoteAddress {
  MachineId machine = 0;
  RegionKey key = 0;
  uint64_t offset = 0;

  std::string ToString() const;
};

enum class OpType : uint8_t { kRead, kWrite, kCompareAndSwap };

// Why an operation failed, in the spirit of ibv_wc_status; every code has a
// name (CompletionCodeName) and maps to an absl::Status code.
enum class CompletionCode : uint8_t {
  kSuccess = 0,
  kUnknownMachine,    // no connection to the target machine
  kInvalidKey,        // the target has no (live) region with this key
  kOutOfBounds,       // [offset, offset + length) leaves the region
  kMisaligned,        // CAS offset not 8-byte aligned
  kLocalProtection,   // local buffer not registered (verbs)
  kRemoteError,       // the target NIC/peer refused or the connection broke
};

inline constexpr int kNumCompletionCodes = 7;
static_assert(static_cast<int>(CompletionCode::kRemoteError) + 1 == kNumCompletionCodes);

const char* CompletionCodeName(CompletionCode code);
const char* OpTypeName(OpType op);

struct Completion {
  uint64_t wr_id = 0;
  OpType op = OpType::kRead;
  CompletionCode code = CompletionCode::kSuccess;
  uint32_t length = 0;
  RemoteAddress remote;

  bool ok() const { return code == CompletionCode::kSuccess; }
  // OK, or an error naming the op, the code, the remote address and length.
  absl::Status ToStatus() const;
};

// Per-queue counters: every completion is counted under its code, so each
// failed operation has a named reason and a count (CompletionCodeName(i)).
struct QueueStats {
  uint64_t posted = 0;
  std::array<uint64_t, kNumCompletionCodes> completed{};

  uint64_t count(CompletionCode code) const { return completed[static_cast<int>(code)]; }
};

// What backs a registered region (FaRM backs regions with large pages so the
// NIC's page-table cache covers them; see internal/region_memory.h).
enum class PageKind : uint8_t {
  kSmall = 0,            // 4 KiB pages
  kTransparentHuge = 1,  // transparent huge pages requested (madvise MADV_HUGEPAGE)
  kHugetlb = 2,          // 2 MiB hugetlb pages, reserved at registration
};
const char* PageKindName(PageKind kind);

// Which pages Register() tries for regions of 2 MiB or more (smaller ones
// always use 4 KiB pages). A fallback is logged with its reason.
enum class HugePages : uint8_t {
  kOff = 0,          // 4 KiB pages
  kTransparent = 1,  // transparent huge pages, else 4 KiB
  kAuto = 2,         // hugetlb, else transparent huge pages, else 4 KiB
};

// A region this machine registered for remote access.
struct MemoryRegion {
  RegionKey key = 0;
  void* base = nullptr;
  uint64_t size = 0;
  PageKind pages = PageKind::kSmall;  // what Register() got
};

// Fault injection for tests (ShmFabric honours it; other backends ignore it).
struct FaultOptions {
  // Between consecutive cache lines of a READ or WRITE, yield the CPU (and spin
  // up to `max_spin` iterations) so concurrent writers interleave with the copy.
  bool adversarial = false;
  uint32_t max_spin = 2000;
  uint64_t seed = 1;
  // Also called at each cache-line boundary in adversarial mode, so a test can
  // change memory in the middle of a read deterministically.
  std::function<void()> on_line_boundary;
};

// What every backend provides. F::Queue is a per-thread queue pair + CQ.
template <typename F>
concept Fabric = requires(F& f, typename F::Queue& q, RemoteAddress ra,
                          void* buf, const void* cbuf, uint64_t* old,
                          absl::Span<Completion> out) {
  { f.machine_id() } -> std::convertible_to<MachineId>;
  { f.endpoint() } -> std::convertible_to<std::string>;
  { f.Connect(MachineId{}, std::string()) } -> std::same_as<absl::Status>;
  { f.Register(uint64_t{}) } -> std::same_as<absl::StatusOr<MemoryRegion>>;
  { f.RegisterLocal(buf, size_t{}) } -> std::same_as<absl::Status>;
  { f.Deregister(RegionKey{}) } -> std::same_as<absl::Status>;
  { f.CreateQueue() } -> std::same_as<absl::StatusOr<std::unique_ptr<typename F::Queue>>>;
  { q.PostRead(ra, buf, uint32_t{}, uint64_t{}) } -> std::same_as<absl::Status>;
  { q.PostWrite(ra, cbuf, uint32_t{}, uint64_t{}) } -> std::same_as<absl::Status>;
  { q.PostCompareAndSwap(ra, uint64_t{}, uint64_t{}, old, uint64_t{}) } -> std::same_as<absl::Status>;
  { q.PollCompletions(out) } -> std::same_as<int>;
  { q.stats() } -> std::same_as<const QueueStats&>;
};

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_FABRIC_H_
