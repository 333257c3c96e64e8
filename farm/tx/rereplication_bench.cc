// rereplication_bench: how long recovery and re-replication take as the
// region grows, against the fabric's own copy rate in the same run.
//
// For each region size: 3 machines (shm fabric), one region with 2 copies,
// filled to --fill of its size with objects of --object_bytes. The backup is
// killed; the CM removes it and transaction recovery runs (timed); then
// Rereplicate() gives the region a new backup on the third machine and copies
// it (timed: the reconfiguration, and the chunked copy). Baselines, same
// process, same bytes: one-sided READs of the primary's region from the new
// backup's fabric in --chunk_kb pieces, and a memcpy.
//
//   bazel build -c opt //farm/tx:rereplication_bench
//   bazel-bin/farm/tx/rereplication_bench --region_mb=4,16,64
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "farm/fabric/sync.h"
#include "farm/tx/test_util.h"

ABSL_FLAG(std::string, region_mb, "4,16,64", "region sizes to measure (MiB, comma-separated)");
ABSL_FLAG(int, object_bytes, 4000, "payload of each object");
ABSL_FLAG(double, fill, 0.75, "fraction of the region filled with objects");
ABSL_FLAG(int, chunk_kb, 256, "bytes of objects per copy chunk (and per baseline READ)");

namespace dctk::farm::tx {
namespace {

double MBps(uint64_t bytes, absl::Duration d) { return bytes / 1e6 / absl::ToDoubleSeconds(d); }

int Run(uint64_t region_mb) {
  LocalClusterOptions o;
  o.machines = 3;
  o.replicas = 2;
  o.regions = 1;
  o.region_size = region_mb << 20;
  auto c = MakeShmCluster(o);
  const cm::Region region = c->cm().config().regions(0);
  const fabric::MachineId primary = region.replicas(0).machine(), backup = region.replicas(1).machine();
  fabric::MachineId spare = 1;
  while (spare == primary || spare == backup) ++spare;

  // Fill: 16 objects per transaction, from the primary's coordinator.
  const int objects = static_cast<int>(o.region_size * absl::GetFlag(FLAGS_fill) /
                                       *SlotBytesFor(absl::GetFlag(FLAGS_object_bytes)));
  const std::string payload(absl::GetFlag(FLAGS_object_bytes), 'x');
  GlobalAddress near;
  const absl::Time fill_start = absl::Now();
  for (int done = 0; done < objects;) {
    auto tx = c->client(primary).Begin();
    for (int i = 0; i < 16 && done + i < objects; ++i) {
      absl::StatusOr<GlobalAddress> a = tx.Alloc(payload.size(), near);
      if (!a.ok() || !tx.Write(*a, payload).ok()) {
        fprintf(stderr, "fill: %s\n", a.status().ToString().c_str());
        return 1;
      }
      near = *a;
    }
    absl::Status s = tx.Commit();
    if (!s.ok()) {
      fprintf(stderr, "fill commit: %s\n", s.ToString().c_str());
      return 1;
    }
    done += 16;
  }
  const absl::Duration fill = absl::Now() - fill_start;

  c->Kill(backup);
  absl::StatusOr<RecoveryReport> recovery = c->Recover({backup});
  if (!recovery.ok()) {
    fprintf(stderr, "recover: %s\n", recovery.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<RereplicationReport> rr = c->Rereplicate(uint64_t(absl::GetFlag(FLAGS_chunk_kb)) << 10);
  if (!rr.ok()) {
    fprintf(stderr, "rereplicate: %s\n", rr.status().ToString().c_str());
    return 1;
  }

  // Baselines over the same bytes: one-sided READs primary -> spare, memcpy.
  const uint64_t bytes = rr->bytes_copied;
  const uint64_t chunk = uint64_t(absl::GetFlag(FLAGS_chunk_kb)) << 10;
  std::vector<uint8_t> buf(chunk), dst(bytes);
  auto& f = c->fabric(spare);
  if (!f.RegisterLocal(buf.data(), buf.size()).ok()) return 1;
  auto q = f.CreateQueue();
  absl::StatusOr<RegionInfo> info = c->table().Lookup(region.id());
  if (!q.ok() || !info.ok()) return 1;
  const absl::Time read_start = absl::Now();
  for (uint64_t off = 0; off < bytes; off += chunk) {
    const uint64_t n = std::min(chunk, bytes - off);
    absl::Status s = fabric::SyncRead(**q, {info->primary().machine, info->primary().key, off}, buf.data(), n);
    if (!s.ok()) {
      fprintf(stderr, "read: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const absl::Duration read = absl::Now() - read_start;
  std::vector<uint8_t> src(bytes, 1);
  const absl::Time copy_start = absl::Now();
  std::memcpy(dst.data(), src.data(), bytes);
  const absl::Duration memcpy_time = absl::Now() - copy_start;

  printf("region %4lu MiB  objects %6d (%5.1f MB)  fill %7.0f ms | recovery %6.2f ms | re-replication: "
         "reconfigure %6.2f ms, copy %8.2f ms = %7.1f MB/s | baseline READ %7.2f ms = %7.1f MB/s, memcpy %6.2f ms = "
         "%7.0f MB/s\n",
         static_cast<unsigned long>(region_mb), rr->objects_copied, bytes / 1e6, absl::ToDoubleMilliseconds(fill),
         absl::ToDoubleMilliseconds(recovery->duration), absl::ToDoubleMilliseconds(rr->reconfigure),
         absl::ToDoubleMilliseconds(rr->copy), MBps(bytes, rr->copy), absl::ToDoubleMilliseconds(read),
         MBps(bytes, read), absl::ToDoubleMilliseconds(memcpy_time), MBps(bytes, memcpy_time));
  fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace dctk::farm::tx

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  for (absl::string_view mb : absl::StrSplit(absl::GetFlag(FLAGS_region_mb), ',')) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(mb, &n) || n == 0) {
      fprintf(stderr, "--region_mb: '%s' is not a positive size\n", std::string(mb).c_str());
      return 2;
    }
    if (int rc = dctk::farm::tx::Run(n); rc != 0) return rc;
  }
  return 0;
}
