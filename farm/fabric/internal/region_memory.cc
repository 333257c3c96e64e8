#include "farm/fabric/internal/region_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm::fabric::internal {
namespace {

constexpr uint64_t kSmallPageBytes = 4096;
constexpr char kMemfdName[] = "dctk-farm-region";

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

std::string Errno(absl::string_view what) { return absl::StrCat(what, ": ", strerror(errno)); }

// Whether a THP setting lets a mapping that asked with madvise get huge pages.
bool ThpAllows(const std::string& setting, bool shared) {
  if (shared) {
    return setting == "always" || setting == "within_size" || setting == "advise" || setting == "force";
  }
  return setting == "always" || setting == "madvise";
}

void Append(std::string& to, absl::string_view reason) {
  if (!to.empty()) to += "; ";
  absl::StrAppend(&to, reason);
}

void LogFallback(const RegionMemory& m, uint64_t requested) {
  if (m.fallback.empty()) return;
  LOG(WARNING) << "farm region of " << requested << " bytes uses " << PageKindName(m.pages)
               << " pages: " << m.fallback;
}

// Tries hugetlb pages; on failure says why in `fallback`.
absl::optional<RegionMemory> TryHugetlb(uint64_t size, bool shared, PageSystem& sys, std::string& fallback) {
  const uint64_t bytes = RoundUp(size, kHugePageBytes);
  int fd = -1;
  if (shared) {
    fd = sys.MemfdCreate(kMemfdName, MFD_CLOEXEC | MFD_HUGETLB);
    if (fd < 0) {
      Append(fallback, Errno("hugetlb: memfd_create(MFD_HUGETLB)"));
      return absl::nullopt;
    }
    if (sys.Ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      Append(fallback, Errno("hugetlb: ftruncate"));
      close(fd);
      return absl::nullopt;
    }
  }
  const int flags = shared ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  void* p = sys.Mmap(bytes, PROT_READ | PROT_WRITE, flags, fd);
  if (p == MAP_FAILED) {
    Append(fallback, Errno(absl::StrCat("hugetlb: mmap of ", bytes >> 20,
                                        " MiB (too few free pages in vm.nr_hugepages?)")));
    if (fd >= 0) close(fd);
    return absl::nullopt;
  }
  return RegionMemory{fd, static_cast<uint8_t*>(p), bytes, PageKind::kHugetlb, ""};
}

absl::StatusOr<RegionMemory> Allocate(uint64_t size, HugePages policy, bool shared, PageSystem& sys) {
  if (size == 0) return absl::InvalidArgumentError("region memory: 0 bytes");
  const bool big = size >= kHugePageBytes;
  std::string fallback;
  if (big && policy == HugePages::kAuto) {
    absl::optional<RegionMemory> m = TryHugetlb(size, shared, sys, fallback);
    if (m.has_value()) return *m;
  }
  bool thp = big && policy != HugePages::kOff;
  if (thp) {
    const char* setting_name = shared ? "shmem_enabled" : "enabled";
    const std::string setting = sys.ThpSetting(setting_name);
    if (!ThpAllows(setting, shared)) {
      Append(fallback, absl::StrCat("transparent huge pages: /sys/kernel/mm/transparent_hugepage/",
                                    setting_name, " is '", setting, "'"));
      thp = false;
    }
  }
  RegionMemory m;
  m.size = RoundUp(size, thp ? kHugePageBytes : kSmallPageBytes);
  if (shared) {
    m.fd = sys.MemfdCreate(kMemfdName, MFD_CLOEXEC);
    if (m.fd < 0) return absl::UnavailableError(Errno("region memory: memfd_create"));
    if (sys.Ftruncate(m.fd, static_cast<off_t>(m.size)) != 0) {
      absl::Status s = absl::UnavailableError(Errno(absl::StrCat("region memory: ftruncate to ", m.size)));
      close(m.fd);
      return s;
    }
  }
  void* p = sys.Mmap(m.size, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS), m.fd);
  if (p == MAP_FAILED) {
    absl::Status s = absl::UnavailableError(Errno(absl::StrCat("region memory: mmap of ", m.size, " bytes")));
    if (m.fd >= 0) close(m.fd);
    return s;
  }
  m.base = static_cast<uint8_t*>(p);
  if (thp) {
    if (sys.Madvise(p, m.size, MADV_HUGEPAGE) == 0) {
      m.pages = PageKind::kTransparentHuge;
    } else {
      Append(fallback, Errno("transparent huge pages: madvise(MADV_HUGEPAGE)"));
    }
  }
  m.fallback = std::move(fallback);
  LogFallback(m, size);
  return m;
}

}  // namespace

int PageSystem::MemfdCreate(const char* name, unsigned flags) { return memfd_create(name, flags); }
int PageSystem::Ftruncate(int fd, off_t size) { return ftruncate(fd, size); }
void* PageSystem::Mmap(size_t len, int prot, int flags, int fd) { return mmap(nullptr, len, prot, flags, fd, 0); }
int PageSystem::Madvise(void* addr, size_t len, int advice) { return madvise(addr, len, advice); }

std::string PageSystem::ThpSetting(const char* name) {
  std::ifstream in(absl::StrCat("/sys/kernel/mm/transparent_hugepage/", name));
  std::string line;
  if (!std::getline(in, line)) return "";
  const size_t open = line.find('['), close = line.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return line;
  return line.substr(open + 1, close - open - 1);
}

PageSystem& PageSystem::Real() {
  static PageSystem* real = new PageSystem;
  return *real;
}

absl::StatusOr<RegionMemory> AllocateShared(uint64_t size, HugePages policy, PageSystem& sys) {
  return Allocate(size, policy, /*shared=*/true, sys);
}

absl::StatusOr<RegionMemory> AllocateAnonymous(uint64_t size, HugePages policy, PageSystem& sys) {
  return Allocate(size, policy, /*shared=*/false, sys);
}

}  // namespace dctk::farm::fabric::internal
