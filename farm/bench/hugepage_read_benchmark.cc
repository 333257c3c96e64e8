// Random one-sided reads over a large region, by the pages backing it.
//
// FaRM saw RDMA reads slow down as registered memory grew past what the NIC
// could cache page-table entries for, and moved regions to large pages. The
// CPU's TLB plays the NIC's part on the shm fabric: a reader machine maps the
// owner's region and reads 64 B at random offsets. Each row is one page kind
// (4k first: the baseline of the same run); a kind the system cannot give
// falls back (logged) and the row says what was used.
//
//   bazel run -c opt //farm/bench:hugepage_read_benchmark -- --gib=4 --reads=20000000 \
//       --pages=4k,thp,hugetlb
//
// thp for shared memory needs /sys/kernel/mm/transparent_hugepage/shmem_enabled
// = advise, hugetlb needs vm.nr_hugepages >= gib * 512 (README has the commands).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "farm/fabric/shm_fabric.h"
#include "glog/logging.h"

ABSL_FLAG(uint64_t, gib, 4, "region size in GiB");
ABSL_FLAG(uint64_t, reads, 20000000, "random 64-byte reads per page kind");
ABSL_FLAG(std::string, pages, "4k,thp,hugetlb", "page kinds to measure, in order");

namespace dctk::farm::fabric {
namespace {

HugePages PolicyFor(const std::string& kind) {
  if (kind == "hugetlb") return HugePages::kAuto;
  if (kind == "thp") return HugePages::kTransparent;
  return HugePages::kOff;
}

int Run() {
  const uint64_t bytes = absl::GetFlag(FLAGS_gib) << 30;
  const uint64_t reads = absl::GetFlag(FLAGS_reads);
  std::printf("%-8s %-12s %10s %12s %10s\n", "asked", "got", "GiB", "reads/s", "ns/read");
  const std::vector<std::string> kinds = absl::StrSplit(absl::GetFlag(FLAGS_pages), ',');
  for (const std::string& kind : kinds) {
    ShmFabric::Options o;
    o.machine_id = 1;
    o.huge_pages = PolicyFor(kind);
    auto owner = ShmFabric::Create(o);
    CHECK(owner.ok()) << owner.status();
    o.machine_id = 2;
    auto reader = ShmFabric::Create(o);
    CHECK(reader.ok()) << reader.status();
    CHECK((*reader)->Connect(1, (*owner)->endpoint()).ok());
    auto region = (*owner)->Register(bytes);
    CHECK(region.ok()) << region.status();
    auto* base = static_cast<uint8_t*>(region->base);
    for (uint64_t off = 0; off < region->size; off += 4096) base[off] = static_cast<uint8_t>(off >> 12);
    auto queue = (*reader)->CreateQueue();
    CHECK(queue.ok());
    const uint64_t lines = bytes / 64;
    uint64_t rng = 88172645463325252ULL, sum = 0;
    alignas(64) uint8_t buf[64];
    Completion c[16];
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < reads; ++i) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      (void)(*queue)->PostRead({1, region->key, (rng % lines) * 64}, buf, 64, i);
      if ((i & 15) == 15) (*queue)->PollCompletions(absl::MakeSpan(c));
      sum += buf[0];
    }
    (*queue)->PollCompletions(absl::MakeSpan(c));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%-8s %-12s %10.1f %12.0f %10.1f   (checksum %lu)\n", kind.c_str(), PageKindName(region->pages),
                region->size / double(1 << 30), reads / secs, secs * 1e9 / reads, sum);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace dctk::farm::fabric

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  return dctk::farm::fabric::Run();
}
