// MachineService: what a farmd machine process runs. It owns the machine's
// fabric, TxMachine (participant + ring server thread) and its copy of the
// region table; joins the CM service and renews its lease; and answers the
// control plane: host a region (register memory, report its key), wire a
// coordinator's rings, install a configuration, the recovery steps
// (block + report in-flight records, known outcomes, resolve, resume), and
// re-replication (copy a chunk of a region it is primary of; apply a chunk to
// a region it is a new backup of).
//
// Fencing: a machine whose lease renewal is refused (the CM removed it), or
// that got no renewal acknowledged within its lease (minus a guard), stops
// serving for good before the CM can remove it: participant blocked, server
// thread stopped, regions deregistered (one-sided reads of them fail). So a
// machine that is slow, partitioned or paused past its lease never serves
// stale data or takes part in a commit after its backups were promoted;
// requests carrying an old configuration id are refused anyway.
//
// Example:
//   auto svc = MachineService<ShmFabric>::Start({.id = 1, .cm_address = "127.0.0.1:4000"},
//                                               std::move(fabric));
//   // serves until destroyed
#ifndef DCTK_FARM_SERVER_MACHINE_SERVICE_H_
#define DCTK_FARM_SERVER_MACHINE_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "farm/cm/cm.pb.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"
#include "farm/server/install_config.h"
#include "farm/tx/machine.h"
#include "farm/tx/tx_log.h"
#include "glog/logging.h"

namespace dctk::farm::server {

struct MachineServiceOptions {
  fabric::MachineId id = 0;
  std::string cm_address;
  std::string control_host = "127.0.0.1";
  std::string log_path;  // empty: no log file
  tx::FsyncPolicy fsync = tx::FsyncPolicy::kNever;
};

template <typename F>
  requires fabric::Fabric<F>
class MachineService {
 public:
  static absl::StatusOr<std::unique_ptr<MachineService>> Start(MachineServiceOptions o, std::unique_ptr<F> fabric) {
    std::unique_ptr<MachineService> s(new MachineService(std::move(o), std::move(fabric)));
    absl::Status st = s->Init();
    if (!st.ok()) return st;
    return s;
  }
  ~MachineService() {
    stop_.Notify();
    if (lease_thread_.joinable()) lease_thread_.join();
    control_.reset();
    machine_.reset();
  }

  const std::string& control_address() const { return control_->address(); }
  // Fenced: removed by the CM, or its lease could not be renewed in time.
  bool evicted() const { return evicted_.load(); }

 private:
  MachineService(MachineServiceOptions o, std::unique_ptr<F> fabric) : o_(std::move(o)), fabric_(std::move(fabric)) {}

  absl::Status Init() {
    absl::StatusOr<std::unique_ptr<tx::TxLog>> log = tx::TxLog::Open(o_.log_path, o_.fsync);
    if (!log.ok()) return log.status();
    auto m = tx::TxMachine<F>::Create(*fabric_, &table_, std::move(*log));
    if (!m.ok()) return m.status();
    machine_ = std::move(*m);
    control_ = std::make_unique<ControlServer>(
        [this](uint16_t method, absl::string_view req) { return Handle(method, req); });
    absl::Status s = control_->Start(o_.control_host);
    if (!s.ok()) return s;
    machine_->Start();
    absl::StatusOr<std::unique_ptr<ControlChannel>> cm = ControlChannel::Connect(o_.cm_address);
    if (!cm.ok()) return cm.status();
    cm_ = std::move(*cm);
    cm::Command join;
    join.mutable_join()->set_machine(o_.id);
    join.mutable_join()->set_endpoint(fabric_->endpoint());
    join.mutable_join()->set_control(control_->address());
    const absl::Time sent = absl::Now();
    absl::StatusOr<cm::Result> r = CallCm(join);
    if (!r.ok()) return r.status();
    lease_ms_ = r->config().lease_ms();
    valid_until_ = ValidUntil(sent);
    lease_thread_ = std::thread([this] { RenewLeases(); });
    return absl::OkStatus();
  }

  absl::StatusOr<cm::Result> CallCm(const cm::Command& c, absl::Duration timeout = absl::Seconds(5)) {
    absl::StatusOr<std::string> bytes = cm_->Call(CM_COMMAND, c.SerializeAsString(), timeout);
    if (!bytes.ok()) return bytes.status();
    cm::Result r;
    if (!r.ParseFromString(*bytes)) return absl::DataLossError("CM: malformed result");
    if (r.code() != 0) return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
    return r;
  }

  // The CM stamps a renewal when it receives it, so a renewal acknowledged
  // here keeps this machine a member until at least `sent + lease` on the
  // CM's clock. The machine fences itself a guard before that moment unless
  // a later renewal was acknowledged: by the time the CM can remove it and
  // promote its backups, it serves nothing (see Fence).
  absl::Time ValidUntil(absl::Time sent) const {
    const absl::Duration lease = absl::Milliseconds(lease_ms_);
    return sent + lease - lease / 8;
  }

  void RenewLeases() {
    const absl::Duration every = absl::Milliseconds(std::max<int64_t>(1, lease_ms_ / 3));
    absl::Time next = absl::Now() + every;
    while (!stop_.WaitForNotificationWithTimeout(std::min(next, valid_until_) - absl::Now())) {
      if (absl::Now() >= valid_until_) {
        Fence("no lease renewal acknowledged in time");
        return;
      }
      if (absl::Now() < next) continue;
      cm::Command renew;
      renew.mutable_renew()->set_machine(o_.id);
      const absl::Time sent = absl::Now();
      absl::StatusOr<cm::Result> r = CallCm(renew, std::max(absl::Milliseconds(1), valid_until_ - sent));
      next = absl::Now() + every;
      if (absl::IsNotFound(r.status())) {
        Fence("the CM removed this machine (lease expired)");
        return;
      }
      if (r.ok()) {
        valid_until_ = ValidUntil(sent);
        continue;
      }
      LOG(WARNING) << "machine " << o_.id << ": lease renewal: " << r.status();
      auto ch = ControlChannel::Connect(o_.cm_address);
      if (ch.ok()) cm_ = std::move(*ch);
    }
  }

  // A machine whose lease may have expired stops for good: its participant
  // refuses every protocol message (no write through it), its server thread
  // stops, and its regions are deregistered so that one-sided reads of them
  // by anyone still following an old configuration fail instead of
  // returning data the new primaries may have overwritten.
  void Fence(absl::string_view why) {
    LOG(ERROR) << "machine " << o_.id << ": " << why << "; fencing: no more transactions or reads served here";
    machine_->participant().Block();
    machine_->Stop();
    absl::MutexLock l(&wire_mu_);
    for (fabric::RegionKey key : keys_) {
      absl::Status s = fabric_->Deregister(key);
      LOG_IF(WARNING, !s.ok()) << "machine " << o_.id << ": deregistering region key " << key << ": " << s;
    }
    keys_.clear();
    evicted_.store(true);
  }

  template <typename M>
  static absl::StatusOr<M> ParseAs(absl::string_view req) {
    M m;
    if (!m.ParseFromArray(req.data(), static_cast<int>(req.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("malformed ", m.GetTypeName()));
    }
    return m;
  }

  absl::StatusOr<std::string> Handle(uint16_t method, absl::string_view req) {
    tx::Participant& p = machine_->participant();
    switch (method) {
      case HOST_REGION: {
        auto r = ParseAs<HostRegion>(req);
        if (!r.ok()) return r.status();
        absl::StatusOr<fabric::MemoryRegion> mr = fabric_->Register(r->size());
        if (!mr.ok()) return mr.status();
        {
          absl::MutexLock l(&wire_mu_);
          keys_.push_back(mr->key);
        }
        p.HostRegion(r->region(), static_cast<uint8_t*>(mr->base), r->size());
        HostRegionReply reply;
        reply.set_key(mr->key);
        return reply.SerializeAsString();
      }
      case WIRE_RING: return Wire(req);
      case INSTALL_CONFIG: {
        auto c = ParseAs<cm::Configuration>(req);
        if (!c.ok()) return c.status();
        InstallConfiguration(*c, &table_);
        p.SetConfig(c->id());
        return std::string();
      }
      case BLOCK: {
        p.Block();
        InFlight out;
        for (const tx::InFlightRecord& r : p.InFlight()) {
          InFlightRecord* rec = out.add_records();
          rec->set_tx(r.tx);
          rec->set_machine(r.machine);
          rec->set_type(static_cast<uint32_t>(r.type));
          rec->set_primary_committed(r.primary_committed);
          rec->set_request(tx::Encode(r.request));
        }
        return out.SerializeAsString();
      }
      case KNOWN: {
        auto l = ParseAs<TxList>(req);
        if (!l.ok()) return l.status();
        TxList out;
        for (uint64_t id : l->tx()) {
          if (p.Known(id) == tx::Outcome::kCommitted) out.add_tx(id);
        }
        return out.SerializeAsString();
      }
      case RESOLVE: {
        auto rs = ParseAs<Resolutions>(req);
        if (!rs.ok()) return rs.status();
        for (const Resolution& r : rs->resolutions()) {
          absl::StatusOr<tx::LockRequest> entries = tx::DecodeLockRequest(r.entries());
          if (!entries.ok()) return entries.status();
          p.Resolve({r.tx(), r.commit(), std::move(entries->entries)});
        }
        return std::string();
      }
      case RESUME: {
        auto r = ParseAs<server::Resume>(req);
        if (!r.ok()) return r.status();
        p.ReleaseAllReservations();
        p.Resume(r->config());
        return std::string();
      }
      case COPY_CHUNK: {
        auto r = ParseAs<CopyChunk>(req);
        if (!r.ok()) return r.status();
        absl::StatusOr<tx::RegionChunk> chunk = p.CopyChunk(r->region(), r->from(), r->max_bytes());
        if (!chunk.ok()) return chunk.status();
        RegionChunk out;
        out.set_region(r->region());
        out.set_objects(tx::Encode(tx::LockRequest{0, 0, {}, std::move(chunk->objects)}));
        out.set_next(chunk->next);
        return out.SerializeAsString();
      }
      case APPLY_CHUNK: {
        auto r = ParseAs<RegionChunk>(req);
        if (!r.ok()) return r.status();
        absl::StatusOr<tx::LockRequest> objects = tx::DecodeLockRequest(r->objects());
        if (!objects.ok()) return objects.status();
        absl::StatusOr<int> installed = p.ApplyChunk(r->region(), objects->entries);
        if (!installed.ok()) return installed.status();
        ApplyChunkReply out;
        out.set_installed(static_cast<uint32_t>(*installed));
        return out.SerializeAsString();
      }
      case PING: return std::string();
      default: return absl::InvalidArgumentError(absl::StrCat("machine ", o_.id, ": unknown control method ", method));
    }
  }

  absl::StatusOr<std::string> Wire(absl::string_view req) {
    auto w = ParseAs<WireRing>(req);
    if (!w.ok()) return w.status();
    absl::MutexLock l(&wire_mu_);
    if (!connected_.contains(w->machine())) {
      absl::Status s = fabric_->Connect(w->machine(), w->fabric_endpoint());
      if (!s.ok()) return s;
      connected_.insert(w->machine());
    }
    auto inbox = fabric_->Register(w->ring_size());
    if (!inbox.ok()) return inbox.status();
    auto heads = fabric_->Register(4096);
    if (!heads.ok()) return heads.status();
    const fabric::MachineId c = w->machine();
    absl::Status s = machine_->WithEndpoint([&](msg::RpcEndpoint<F>& ep) {
      return ep.AddPeer(w->endpoint_id(), static_cast<uint8_t*>(inbox->base), w->ring_size(), {c, w->head_key(), 0},
                        {c, w->inbox_key(), 0}, w->ring_size(), static_cast<const uint64_t*>(heads->base));
    });
    if (!s.ok()) return s;
    WireRingReply reply;
    reply.set_inbox_key(inbox->key);
    reply.set_head_key(heads->key);
    return reply.SerializeAsString();
  }

  const MachineServiceOptions o_;
  std::unique_ptr<F> fabric_;
  RegionTable table_;
  std::unique_ptr<tx::TxMachine<F>> machine_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<ControlChannel> cm_;
  int64_t lease_ms_ = 100;
  absl::Time valid_until_;  // lease thread only (after Init)
  absl::Notification stop_;
  std::atomic<bool> evicted_{false};
  std::thread lease_thread_;
  absl::Mutex wire_mu_;
  absl::flat_hash_set<fabric::MachineId> connected_ ABSL_GUARDED_BY(wire_mu_);
  std::vector<fabric::RegionKey> keys_ ABSL_GUARDED_BY(wire_mu_);  // hosted regions
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_MACHINE_SERVICE_H_
