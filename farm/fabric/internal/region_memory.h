// Region memory with huge pages where the system has them.
//
// FaRM found RDMA slowing down as registered memory grew, because the NIC
// could not cache the page-table entries of 4 KiB pages, and backed regions
// with large physically contiguous pages. Here a region of 2 MiB or more is
// backed, by policy (fabric.h HugePages), with
//   1. hugetlb 2 MiB pages (memfd MFD_HUGETLB / MAP_HUGETLB; needs pages
//      reserved in vm.nr_hugepages, and fails cleanly at mmap when there are
//      too few), else
//   2. transparent huge pages (madvise MADV_HUGEPAGE; for shared memfd
//      regions only when /sys/kernel/mm/transparent_hugepage/shmem_enabled
//      allows it), else
//   3. 4 KiB pages,
// and the result says which one it got and why it fell back (also logged).
// ibv_reg_mr of hugetlb or THP memory lets the NIC use large page entries
// (the driver picks the largest page size the mapping is contiguous in).
//
// The kernel calls go through PageSystem so tests can make each step fail.
//
// Example:
//   absl::StatusOr<RegionMemory> m = AllocateShared(1 << 30, HugePages::kAuto, PageSystem::Real());
//   // m->pages: kHugetlb, kTransparentHuge or kSmall; m->fallback says why not better
#ifndef DCTK_FARM_FABRIC_INTERNAL_REGION_MEMORY_H_
#define DCTK_FARM_FABRIC_INTERNAL_REGION_MEMORY_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "farm/fabric/fabric.h"

namespace dctk::farm::fabric::internal {

inline constexpr uint64_t kHugePageBytes = uint64_t{2} << 20;

// The system calls huge pages depend on; Real() makes them.
class PageSystem {
 public:
  virtual ~PageSystem() = default;
  virtual int MemfdCreate(const char* name, unsigned flags);
  virtual int Ftruncate(int fd, off_t size);
  virtual void* Mmap(size_t len, int prot, int flags, int fd);
  virtual int Madvise(void* addr, size_t len, int advice);
  // The selected value of a THP sysfs setting ("enabled" or "shmem_enabled"),
  // e.g. "madvise"; empty if unreadable.
  virtual std::string ThpSetting(const char* name);

  static PageSystem& Real();
};

struct RegionMemory {
  int fd = -1;  // the memfd (shared memory), -1 for anonymous memory
  uint8_t* base = nullptr;
  uint64_t size = 0;  // rounded up to the page size used
  PageKind pages = PageKind::kSmall;
  std::string fallback;  // why a better kind the policy allowed was not used; empty if none
};

// Shared memory (memfd, for the shm fabric: passed to peers).
absl::StatusOr<RegionMemory> AllocateShared(uint64_t size, HugePages policy, PageSystem& sys);
// Private anonymous memory (verbs and net fabrics).
absl::StatusOr<RegionMemory> AllocateAnonymous(uint64_t size, HugePages policy, PageSystem& sys);

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_REGION_MEMORY_H_
