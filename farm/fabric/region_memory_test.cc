// Region memory on huge pages: off, on (anonymous THP without privileges;
// hugetlb and shared-memory THP as root, with the system settings restored),
// and every fallback step made to fail through a fake PageSystem.
#include "farm/fabric/internal/region_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/sync.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

using internal::AllocateAnonymous;
using internal::AllocateShared;
using internal::PageSystem;
using internal::RegionMemory;

constexpr uint64_t kMiB = 1 << 20;

// A field (in kB) of the /proc/self/smaps entry that contains `addr`.
uint64_t SmapsField(const void* addr, const std::string& field) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(in, line)) {
    const size_t dash = line.find('-');
    if (dash != std::string::npos && dash < 17 && line.find(' ') > dash) {
      inside = a >= std::stoull(line.substr(0, dash), nullptr, 16) &&
               a < std::stoull(line.substr(dash + 1, line.find(' ') - dash - 1), nullptr, 16);
      continue;
    }
    if (inside && line.rfind(field + ":", 0) == 0) {
      std::istringstream v(line.substr(field.size() + 1));
      uint64_t kb = 0;
      v >> kb;
      return kb;
    }
  }
  return 0;
}

void Release(const RegionMemory& m) {
  munmap(m.base, m.size);
  if (m.fd >= 0) close(m.fd);
}

void TouchAndCheckZeroed(const RegionMemory& m) {
  for (uint64_t off = 0; off < m.size; off += 4096) {
    ASSERT_EQ(m.base[off], 0);
    m.base[off] = 1;
  }
}

TEST(RegionMemoryTest, OffGivesSmallPagesAndNoFallback) {
  auto m = AllocateShared(4 * kMiB, HugePages::kOff, PageSystem::Real());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pages, PageKind::kSmall);
  EXPECT_EQ(m->fallback, "");
  EXPECT_GE(m->fd, 0);
  TouchAndCheckZeroed(*m);
  Release(*m);
}

TEST(RegionMemoryTest, RegionsBelowOneHugePageUseSmallPages) {
  auto m = AllocateShared(64 * 1024, HugePages::kAuto, PageSystem::Real());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pages, PageKind::kSmall);
  EXPECT_EQ(m->size, 64u * 1024);
  EXPECT_EQ(m->fallback, "");
  Release(*m);
}

// Makes chosen steps fail; the rest are real.
class FailingPageSystem : public PageSystem {
 public:
  bool fail_hugetlb_memfd = false;
  bool fail_hugetlb_mmap = false;
  bool fail_madvise = false;
  std::string thp = "never";

  int MemfdCreate(const char* name, unsigned flags) override {
    if (fail_hugetlb_memfd && (flags & MFD_HUGETLB)) return errno = ENOSYS, -1;
    const int fd = PageSystem::MemfdCreate(name, flags);
    if (flags & MFD_HUGETLB) hugetlb_fd_ = fd;
    return fd;
  }
  void* Mmap(size_t len, int prot, int flags, int fd) override {
    if (fail_hugetlb_mmap && fd >= 0 && fd == hugetlb_fd_) {
      hugetlb_fd_ = -2;  // the caller closes it; its number will be reused
      return errno = ENOMEM, MAP_FAILED;
    }
    return PageSystem::Mmap(len, prot, flags, fd);
  }
  int Madvise(void* addr, size_t len, int advice) override {
    if (fail_madvise) return errno = EINVAL, -1;
    return PageSystem::Madvise(addr, len, advice);
  }
  std::string ThpSetting(const char*) override { return thp; }

 private:
  int hugetlb_fd_ = -2;
};

TEST(RegionMemoryTest, FallsBackStepByStepAndSaysWhy) {
  FailingPageSystem sys;
  sys.fail_hugetlb_memfd = true;
  auto m = AllocateShared(4 * kMiB, HugePages::kAuto, sys);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pages, PageKind::kSmall);
  EXPECT_NE(m->fallback.find("memfd_create(MFD_HUGETLB)"), std::string::npos) << m->fallback;
  EXPECT_NE(m->fallback.find("shmem_enabled is 'never'"), std::string::npos) << m->fallback;
  TouchAndCheckZeroed(*m);
  Release(*m);

  // THP allowed by the setting but madvise refused.
  sys.thp = "advise";
  sys.fail_madvise = true;
  m = AllocateShared(4 * kMiB, HugePages::kTransparent, sys);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pages, PageKind::kSmall);
  EXPECT_NE(m->fallback.find("madvise(MADV_HUGEPAGE)"), std::string::npos) << m->fallback;
  Release(*m);

  // hugetlb has no free pages (mmap ENOMEM); THP works.
  FailingPageSystem sys2;
  sys2.fail_hugetlb_mmap = true;
  sys2.thp = "advise";
  m = AllocateShared(3 * kMiB, HugePages::kAuto, sys2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pages, PageKind::kTransparentHuge);
  EXPECT_EQ(m->size, 4 * kMiB);  // rounded to huge pages
  EXPECT_NE(m->fallback.find("nr_hugepages"), std::string::npos) << m->fallback;
  Release(*m);
}

TEST(RegionMemoryTest, FabricReportsFallbackPagesAndStillWorks) {
  FailingPageSystem sys;
  sys.fail_hugetlb_memfd = true;
  ShmFabric::Options o;
  o.machine_id = 1;
  o.page_system = &sys;
  auto owner = std::move(*ShmFabric::Create(o));
  auto r = owner->Register(4 * kMiB);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->pages, PageKind::kSmall);
  auto q = std::move(*owner->CreateQueue());
  uint64_t v = 42, got = 0;
  ASSERT_TRUE(SyncWrite(*q, {1, r->key, 3 * kMiB}, &v, 8).ok());
  ASSERT_TRUE(SyncRead(*q, {1, r->key, 3 * kMiB}, &got, 8).ok());
  EXPECT_EQ(got, 42u);
}

TEST(RegionMemoryTest, AnonymousTransparentHugePagesWhereTheSystemAllowsThem) {
  const std::string setting = PageSystem::Real().ThpSetting("enabled");
  if (setting != "always" && setting != "madvise") {
    GTEST_SKIP() << "transparent_hugepage/enabled is '" << setting << "': anonymous THP unavailable";
  }
  auto m = AllocateAnonymous(8 * kMiB, HugePages::kAuto, PageSystem::Real());
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->pages, m->fallback.find("hugetlb") == std::string::npos ? PageKind::kHugetlb
                                                                       : PageKind::kTransparentHuge)
      << m->fallback;
  TouchAndCheckZeroed(*m);
  if (m->pages == PageKind::kTransparentHuge) {
    EXPECT_GT(SmapsField(m->base, "AnonHugePages"), 0u) << "madvise accepted but no huge page mapped";
  }
  Release(*m);
}

// Sets a /proc or /sys value for the test's duration and restores it.
class ScopedSetting {
 public:
  ScopedSetting(std::string path, const std::string& value) : path_(std::move(path)) {
    std::ifstream in(path_);
    std::string line;
    std::getline(in, line);
    const size_t open = line.find('['), close = line.find(']');
    old_ = open != std::string::npos && close > open ? line.substr(open + 1, close - open - 1) : line;
    ok_ = Write(value);
  }
  ~ScopedSetting() { Write(old_); }
  bool ok() const { return ok_; }
  const std::string& old() const { return old_; }

 private:
  bool Write(const std::string& v) {
    std::ofstream out(path_);
    out << v << "\n";
    out.flush();
    return static_cast<bool>(out);
  }
  std::string path_, old_;
  bool ok_ = false;
};

TEST(RegionMemoryTest, HugetlbRegionSharedBetweenMachines) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to reserve hugetlb pages (vm.nr_hugepages)";
  std::ifstream in("/proc/sys/vm/nr_hugepages");
  uint64_t reserved = 0;
  in >> reserved;
  ScopedSetting pages("/proc/sys/vm/nr_hugepages", std::to_string(reserved + 4));
  ASSERT_TRUE(pages.ok());
  ShmFabric::Options o;
  o.machine_id = 1;
  auto owner = std::move(*ShmFabric::Create(o));
  o.machine_id = 2;
  auto peer = std::move(*ShmFabric::Create(o));
  ASSERT_TRUE(peer->Connect(1, owner->endpoint()).ok());
  auto r = owner->Register(3 * kMiB);
  ASSERT_TRUE(r.ok()) << r.status();
  if (r->pages != PageKind::kHugetlb) GTEST_SKIP() << "the kernel gave no hugetlb pages even when reserved";
  EXPECT_EQ(r->size, 4 * kMiB);
  EXPECT_EQ(SmapsField(r->base, "KernelPageSize"), 2048u);
  static_cast<uint8_t*>(r->base)[3 * kMiB + 8] = 7;
  auto q = std::move(*peer->CreateQueue());
  uint64_t got = 0;
  ASSERT_TRUE(SyncRead(*q, {1, r->key, 3 * kMiB + 8}, &got, 8).ok());
  EXPECT_EQ(got, 7u);
}

TEST(RegionMemoryTest, SharedTransparentHugePagesWhenEnabled) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to set transparent_hugepage/shmem_enabled";
  ScopedSetting thp("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "advise");
  ASSERT_TRUE(thp.ok());
  ShmFabric::Options o;
  o.machine_id = 1;
  o.huge_pages = HugePages::kTransparent;
  auto owner = std::move(*ShmFabric::Create(o));
  auto r = owner->Register(4 * kMiB);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->pages, PageKind::kTransparentHuge);
  for (uint64_t off = 0; off < r->size; off += 4096) static_cast<uint8_t*>(r->base)[off] = 1;
  EXPECT_GT(SmapsField(r->base, "ShmemPmdMapped") + SmapsField(r->base, "FilePmdMapped"), 0u)
      << "THP requested but the mapping has no huge page";
}

}  // namespace
}  // namespace dctk::farm::fabric
