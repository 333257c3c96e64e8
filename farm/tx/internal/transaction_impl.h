// Implementation of transaction.h (templates on the fabric). Not for direct inclusion.
#ifndef DCTK_FARM_TX_INTERNAL_TRANSACTION_IMPL_H_
#define DCTK_FARM_TX_INTERNAL_TRANSACTION_IMPL_H_

#include <sched.h>

#include <algorithm>
#include <cstring>

#include "absl/container/btree_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/optional.h"
#include "farm/core/object.h"
#include "farm/fabric/sync.h"
#include "farm/tx/object_heap.h"

namespace dctk::farm::tx {

template <typename F>
  requires fabric::Fabric<F>
absl::StatusOr<std::unique_ptr<TxClient<F>>> TxClient<F>::Create(F& fabric, uint32_t slot,
                                                                  const RegionTable* table,
                                                                  const std::atomic<uint64_t>* config,
                                                                  Participant* local, TxClientOptions options) {
  std::unique_ptr<TxClient> c(new TxClient(fabric, slot, table, config, local, std::move(options)));
  auto rq = fabric.CreateQueue();
  if (!rq.ok()) return rq.status();
  auto pq = fabric.CreateQueue();
  if (!pq.ok()) return pq.status();
  c->read_queue_ = std::move(*rq);
  c->rpc_queue_ = std::move(*pq);
  c->endpoint_ = std::make_unique<msg::RpcEndpoint<F>>(fabric, c->rpc_queue_.get(),
                                                       EndpointId(fabric.machine_id(), slot));
  c->endpoint_->set_yield_while_waiting(c->options_.yield_while_waiting);
  c->scratch_.resize(ObjectBytes(kMaxObjectPayload) / 8);
  absl::Status s = fabric.RegisterLocal(c->scratch_.data(), c->scratch_.size() * 8);
  if (!s.ok()) return s;
  return c;
}

template <typename F>
  requires fabric::Fabric<F>
template <typename Req>
Reply TxClient<F>::LocalCall(Handler h, const Req& req) {
  ++stats_.fast_path_calls;
  if constexpr (std::is_same_v<Req, LockRequest>) {
    return h == kLock ? local_->Lock(req) : local_->CommitBackup(req);
  } else if constexpr (std::is_same_v<Req, AllocRequest>) {
    return local_->Alloc(req);
  } else {
    switch (h) {
      case kCommitPrimary: return local_->CommitPrimary(req);
      case kAbort: return local_->Abort(req);
      case kTruncate: return local_->Truncate(req);
      default: return local_->QueryOutcome(req);
    }
  }
}

template <typename F>
  requires fabric::Fabric<F>
Reply TxClient<F>::ReplyOf(fabric::MachineId machine, const absl::StatusOr<std::string>& r) {
  if (absl::IsDeadlineExceeded(r.status())) {
    return ReplyFrom(absl::DeadlineExceededError(
        absl::StrCat("machine ", machine, " did not answer: ", r.status().message())));
  }
  if (!r.ok()) {
    return ReplyFrom(absl::UnavailableError(
        absl::StrCat("machine ", machine, " unreachable: ", r.status().message())));
  }
  absl::StatusOr<Reply> reply = DecodeReply(*r);
  if (!reply.ok()) return ReplyFrom(reply.status());
  return *reply;
}

template <typename F>
  requires fabric::Fabric<F>
template <typename Req>
Reply TxClient<F>::Call(fabric::MachineId machine, Handler h, const Req& req) {
  const PhaseCall<Req> to{machine, &req};
  return CallAll<Req>(h, absl::MakeConstSpan(&to, 1)).front();  // no step: always sent
}

template <typename F>
  requires fabric::Fabric<F>
template <typename Req>
std::vector<Reply> TxClient<F>::CallAll(Handler h, absl::Span<const PhaseCall<Req>> to,
                                        absl::optional<CommitStep> step) {
  using PendingCall = typename msg::RpcEndpoint<F>::PendingCall;
  absl::InlinedVector<PendingCall, 4> pending;
  absl::InlinedVector<size_t, 4> remote, local;  // indexes into `to`
  size_t admitted = 0;
  for (; admitted < to.size(); ++admitted) {
    const PhaseCall<Req>& c = to[admitted];
    if (step && options_.crash_before && options_.crash_before(*step, c.machine)) break;
    if (IsLocal(c.machine)) {
      local.push_back(admitted);
      continue;
    }
    ++stats_.rpc_calls;
    const std::string bytes = Encode(*c.req);
    pending.push_back(endpoint_->Start(
        c.machine, h,
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
        options_.rpc_timeout));
    remote.push_back(admitted);
  }
  std::vector<Reply> replies(admitted);
  for (size_t i : local) replies[i] = LocalCall(h, *to[i].req);
  if (pending.empty()) return replies;
  absl::InlinedVector<absl::StatusOr<std::string>, 4> got(pending.size());
  const uint64_t given_up = endpoint_->given_up();
  endpoint_->Await(pending, absl::MakeSpan(got), GiveUp(to[0].req->config));
  stats_.gave_up += endpoint_->given_up() - given_up;
  for (size_t k = 0; k < remote.size(); ++k) {
    replies[remote[k]] = ReplyOf(to[remote[k]].machine, got[k]);
  }
  return replies;
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status TxClient<F>::CheckRings(const RegionInfo& region) const {
  for (const Replica& r : region.replicas) {
    if (IsLocal(r.machine) || endpoint_->HasPeer(r.machine)) continue;
    return absl::UnavailableError(absl::StrCat(
        "machine ", fabric_.machine_id(), " has no ring to machine ", r.machine,
        " (a copy of region ", region.id, "): it joined after this coordinator wired its rings"));
  }
  return absl::OkStatus();
}

template <typename F>
  requires fabric::Fabric<F>
std::vector<RegionId> TxClient<F>::RegionsForAlloc() {
  std::vector<RegionInfo> all = table_->All();
  std::sort(all.begin(), all.end(), [](const RegionInfo& a, const RegionInfo& b) { return a.id < b.id; });
  std::vector<RegionId> local, remote;
  for (const RegionInfo& r : all) (r.primary().machine == fabric_.machine_id() ? local : remote).push_back(r.id);
  for (std::vector<RegionId>* v : {&local, &remote}) {
    if (!v->empty()) std::rotate(v->begin(), v->begin() + seq_ % v->size(), v->end());
  }
  local.insert(local.end(), remote.begin(), remote.end());
  return local;
}

template <typename F>
  requires fabric::Fabric<F>
Transaction<F>::Transaction(Transaction&& other) noexcept
    : client_(other.client_), id_(other.id_), seq_(other.seq_), watermark_(other.watermark_),
      done_(other.done_), reads_(std::move(other.reads_)),
      writes_(std::move(other.writes_)), reserved_at_(std::move(other.reserved_at_)) {
  other.done_ = true;
}

template <typename F>
  requires fabric::Fabric<F>
Watermark Transaction<F>::watermark() const {
  return seq_ != 0 ? client_->watermark() : watermark_;
}

template <typename F>
  requires fabric::Fabric<F>
void Transaction<F>::Finish() {
  if (seq_ != 0) client_->open_.erase(seq_);
}

template <typename F>
  requires fabric::Fabric<F>
void TxClient<F>::RetryTruncates() {
  SettleUndecided();
  if (untruncated_.empty()) return;
  const absl::Time now = absl::Now();
  const absl::btree_set<fabric::MachineId> members = ReplicaMachines();
  for (auto it = untruncated_.begin(); it != untruncated_.end();) {
    Untruncated& u = it->second;
    if (now < u.retry_at && config() == u.config) {
      ++it;
      continue;
    }
    const TxRequest truncate{config(), MakeTxId(fabric_.machine_id(), slot_, it->first), watermark()};
    absl::erase_if(u.machines, [&](fabric::MachineId m) { return !members.contains(m); });
    const std::vector<PhaseCall<TxRequest>> to = To(u.machines, truncate);
    const std::vector<Reply> replies = CallAll<TxRequest>(kTruncate, to);
    for (size_t i = 0; i < to.size(); ++i) {
      if (StatusOf(replies[i]).ok()) u.machines.erase(to[i].machine);
    }
    if (!u.machines.empty()) {
      u.config = truncate.config;
      u.retry_at = absl::Now() + options_.rpc_timeout;
      ++it;
      continue;
    }
    open_.erase(it->first);
    it = untruncated_.erase(it);
  }
}

template <typename F>
  requires fabric::Fabric<F>
size_t TxClient<F>::Settle(absl::Time deadline) {
  RetryTruncates();
  while ((!untruncated_.empty() || !undecided_.empty()) && absl::Now() < deadline) {
    const uint64_t seen = config();  // before NextRetry: a later move wakes the wait
    const absl::Time due = std::min(NextRetry(), deadline);
    for (absl::Time now = absl::Now(); now < due && config() == seen; now = absl::Now()) {
      absl::SleepFor(std::min(kConfigCheck, due - now));
    }
    RetryTruncates();
  }
  return unfinished();
}

template <typename F>
  requires fabric::Fabric<F>
absl::Time TxClient<F>::NextRetry() const {
  const uint64_t now_config = config();
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [seq, u] : untruncated_) {
    if (u.config != now_config) return absl::InfinitePast();  // due now
    next = std::min(next, u.retry_at);
  }
  for (const auto& [seq, u] : undecided_) {
    if (now_config > u.config) next = std::min(next, u.retry_at);
  }
  return next;
}

template <typename F>
  requires fabric::Fabric<F>
void TxClient<F>::SettleUndecided() {
  const absl::Time now = absl::Now();
  for (auto it = undecided_.begin(); it != undecided_.end();) {
    Untruncated& u = it->second;
    if (config() <= u.config || now < u.retry_at) {
      ++it;
      continue;
    }
    const TxRequest ask{config(), MakeTxId(fabric_.machine_id(), slot_, it->first)};
    Outcome decided = Outcome::kUnknown;
    for (fabric::MachineId q : ReplicaMachines()) {
      const Reply r = Call(q, kOutcome, ask);
      if (!StatusOf(r).ok()) continue;
      if (r.value == static_cast<uint64_t>(Outcome::kCommitted) ||
          r.value == static_cast<uint64_t>(Outcome::kAborted)) {
        decided = static_cast<Outcome>(r.value);
        break;
      }
      // Recovered into a newer configuration without a record of it (as
      // in Persist): it never committed.
      if (r.aux > u.config) decided = Outcome::kAborted;
      if (decided != Outcome::kUnknown) break;
    }
    if (decided == Outcome::kUnknown) {
      u.retry_at = now + options_.rpc_timeout;
      ++it;
      continue;
    }
    if (decided == Outcome::kCommitted) {
      untruncated_[it->first] = {std::move(u.machines), 0, now};
    } else {
      open_.erase(it->first);
    }
    it = undecided_.erase(it);
  }
}

template <typename F>
  requires fabric::Fabric<F>
void Transaction<F>::KeepUndecided(absl::btree_set<fabric::MachineId> participants, uint64_t config) {
  if (seq_ == 0) return;  // whoever chose the id settles it (Shipper: Unknown too)
  client_->undecided_[seq_] = {std::move(participants), config, absl::Now()};
}

template <typename F>
  requires fabric::Fabric<F>
bool Transaction<F>::Truncate(const absl::btree_set<fabric::MachineId>& machines, uint64_t config) {
  const TxRequest truncate{config, id_, watermark()};
  const auto to = TxClient<F>::To(machines, truncate);
  const std::vector<Reply> replies =
      client_->template CallAll<TxRequest>(kTruncate, to, CommitStep::kTruncate);
  if (replies.size() < to.size()) return false;  // stopped dead: never finished
  absl::btree_set<fabric::MachineId> failed;
  for (size_t i = 0; i < to.size(); ++i) {
    if (!StatusOf(replies[i]).ok()) failed.insert(to[i].machine);
  }
  if (seq_ != 0) {
    if (failed.empty()) {
      Finish();
    } else {
      client_->untruncated_[seq_] = {std::move(failed), config, absl::Now() + client_->options_.rpc_timeout};
    }
    return true;
  }
  // Whoever chose the id may pass it in its watermark once this returns.
  const absl::Time deadline = absl::Now() + client_->options_.outcome_timeout;
  while (!failed.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
    const absl::btree_set<fabric::MachineId> members = client_->ReplicaMachines();
    const TxRequest again{client_->config(), id_, watermark_};
    absl::erase_if(failed, [&](fabric::MachineId m) {
      return !members.contains(m) || StatusOf(client_->Call(m, kTruncate, again)).ok();
    });
  }
  return true;
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::Fail(absl::Status s, const std::vector<fabric::MachineId>& locked) {
  done_ = true;
  AbortAt(locked);
  Finish();
  if (absl::IsAborted(s)) ++client_->stats_.aborted;
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) ++client_->stats_.unavailable;
  return s;
}

template <typename F>
  requires fabric::Fabric<F>
void Transaction<F>::AbortAt(const std::vector<fabric::MachineId>& machines) {
  absl::btree_set<fabric::MachineId> to(machines.begin(), machines.end());
  to.insert(reserved_at_.begin(), reserved_at_.end());
  if (to.empty()) return;
  if (client_->options_.give_up_on_new_config) {
    // A machine holding no replica now was removed: it answers nothing
    // (the ABORT, of the current configuration, would not give up on it),
    // and recovery released its locks and reservations.
    const absl::btree_set<fabric::MachineId> members = client_->ReplicaMachines();
    absl::erase_if(to, [&](fabric::MachineId m) { return !members.contains(m); });
  }
  const TxRequest abort{client_->config(), id_, watermark()};
  client_->template CallAll<TxRequest>(kAbort, TxClient<F>::To(to, abort));
}

template <typename F>
  requires fabric::Fabric<F>
void Transaction<F>::Abort() {
  if (done_) return;
  done_ = true;
  AbortAt({});
  Finish();
}

template <typename F>
  requires fabric::Fabric<F>
absl::StatusOr<std::string> Transaction<F>::Read(GlobalAddress addr, size_t len) {
  if (done_) return absl::FailedPreconditionError("Read: the transaction has finished");
  if (absl::Status s = client_->Admitted(); !s.ok()) return Fail(s);
  if (len == 0 || len > kMaxObjectPayload) {
    return absl::InvalidArgumentError(absl::StrCat("Read of ", len, " bytes at ", addr.ToString(),
                                                   ": must be 1..", kMaxObjectPayload));
  }
  if (addr.offset() % kLineSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat("Read at ", addr.ToString(), ": objects start on 64-byte lines"));
  }
  if (auto w = writes_.find(addr.raw()); w != writes_.end()) {
    if (w->second.kind == EntryKind::kFree) {
      return absl::FailedPreconditionError(absl::StrCat(addr.ToString(), " was freed by this transaction"));
    }
    std::string out = w->second.data;
    out.resize(len, '\0');
    return out;
  }
  const size_t lines = ObjectLines(len);
  const uint32_t bytes = static_cast<uint32_t>(lines * kLineSize);
  absl::StatusOr<fabric::RemoteAddress> at = client_->cache_.ResolvePrimary(addr, bytes);
  if (!at.ok()) return at.status();
  auto* copy = reinterpret_cast<uint8_t*>(client_->scratch_.data());
  int locked = 0, torn = 0;
  while (true) {
    ++client_->stats_.reads;
    absl::Status s = fabric::SyncRead(*client_->read_queue_, *at, copy, bytes);
    if (!s.ok()) return Fail(absl::UnavailableError(absl::StrCat("Read at ", addr.ToString(), ": ", s.message())));
    s = CheckSnapshot(copy, lines);
    if (s.ok()) break;
    uint64_t header;
    std::memcpy(&header, copy, 8);
    if (absl::IsFailedPrecondition(s) && IsAllocated(header) && !StartsObject(copy)) {
      // A stale address: its object was freed and its block reused for
      // another size class. Nothing read here may be committed.
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "Read at ", addr.ToString(), ": not the start of an object (the line there is inside ",
          "another object: the object once there was freed and its block reused)")));
    }
    if (absl::IsFailedPrecondition(s)) {
      // Its absence is not validated at commit (no version recorded), so
      // nothing decided on it may be committed either.
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("Read at ", addr.ToString(), ": no object allocated there (freed or never allocated)")));
    }
    ++client_->stats_.read_retries;
    if (!IsLocked(header) && ++torn > client_->options_.max_torn_reads) {
      return Fail(absl::AbortedError(absl::StrCat(
          "Read of ", len, " bytes at ", addr.ToString(), ": no consistent copy in ", torn,
          " reads (line versions disagree: a writer keeps racing, or the read is longer than the object)")));
    }
    if (IsLocked(header) && ++locked > client_->options_.max_locked_reads) {
      return Fail(absl::AbortedError(absl::StrCat("Read at ", addr.ToString(),
                                                  ": locked by another transaction's commit")));
    }
    if (IsLocked(header)) sched_yield();
  }
  uint64_t header;
  std::memcpy(&header, copy, 8);
  const uint64_t version = VersionOf(header);
  auto [it, fresh] = reads_.emplace(addr.raw(), version);
  if (!fresh && it->second != version) {
    return Fail(absl::AbortedError(absl::StrCat("Read at ", addr.ToString(), ": changed during the transaction (version ",
                                                it->second, " then ", version, ")")));
  }
  std::string out(len, '\0');
  ExtractPayload(copy, out.data(), len);
  return out;
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::Write(GlobalAddress addr, absl::string_view data) {
  if (done_) return absl::FailedPreconditionError("Write: the transaction has finished");
  if (data.empty() || data.size() > kMaxObjectPayload) {
    return absl::InvalidArgumentError(absl::StrCat("Write of ", data.size(), " bytes at ", addr.ToString(),
                                                   ": must be 1..", kMaxObjectPayload));
  }
  if (auto w = writes_.find(addr.raw()); w != writes_.end()) {
    if (w->second.kind == EntryKind::kFree) {
      return absl::FailedPreconditionError(absl::StrCat(addr.ToString(), " was freed by this transaction"));
    }
    if (w->second.kind == EntryKind::kAlloc && data.size() > PayloadCapacity(w->second.slot_bytes / kLineSize)) {
      return absl::InvalidArgumentError(absl::StrCat("Write of ", data.size(), " bytes at ", addr.ToString(),
                                                     ": larger than the object allocated"));
    }
    w->second.data = std::string(data);
    return absl::OkStatus();
  }
  if (!reads_.contains(addr.raw())) {
    absl::StatusOr<std::string> r = Read(addr, data.size());
    if (!r.ok()) return r.status();
  }
  writes_[addr.raw()] = WriteEntry{addr, reads_.at(addr.raw()), EntryKind::kWrite, 0, std::string(data)};
  return absl::OkStatus();
}

template <typename F>
  requires fabric::Fabric<F>
absl::StatusOr<GlobalAddress> Transaction<F>::Alloc(size_t bytes, GlobalAddress near) {
  if (done_) return absl::FailedPreconditionError("Alloc: the transaction has finished");
  if (absl::Status s = client_->Admitted(); !s.ok()) return Fail(s);
  absl::StatusOr<uint32_t> slot = SlotBytesFor(bytes);
  if (!slot.ok()) return slot.status();
  const std::vector<RegionId> regions =
      near.is_null() ? client_->RegionsForAlloc() : std::vector<RegionId>{near.region()};
  if (regions.empty()) return absl::FailedPreconditionError("Alloc: the cluster has no regions");
  Reply r;
  fabric::MachineId primary = 0;
  absl::Status s;
  for (RegionId region : regions) {
    absl::StatusOr<const RegionInfo*> info = client_->cache_.Lookup(region);
    if (!info.ok()) return info.status();
    primary = (*info)->primary().machine;
    r = client_->Call(primary, kAlloc,
                      AllocRequest{client_->config(), id_, region, static_cast<uint32_t>(bytes), near.raw()});
    s = StatusOf(r);
    if (!absl::IsResourceExhausted(s)) break;  // without a hint, a full region sends us to the next
  }
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) return Fail(s);
  if (absl::IsResourceExhausted(s) && regions.size() > 1) {
    return absl::ResourceExhaustedError(absl::StrCat("Alloc of ", bytes, " bytes: all ", regions.size(),
                                                     " regions tried are full (last: ", s.message(), ")"));
  }
  if (!s.ok()) return s;
  reserved_at_.push_back(primary);
  const GlobalAddress addr = GlobalAddress::FromRaw(r.value);
  writes_[addr.raw()] = WriteEntry{addr, r.aux, EntryKind::kAlloc, *slot, std::string()};
  return addr;
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::Free(GlobalAddress addr) {
  if (done_) return absl::FailedPreconditionError("Free: the transaction has finished");
  if (auto w = writes_.find(addr.raw()); w != writes_.end()) {
    if (w->second.kind == EntryKind::kAlloc) {
      return absl::FailedPreconditionError(absl::StrCat("Free of ", addr.ToString(),
                                                        ": allocated by this transaction (abort it instead)"));
    }
    if (w->second.kind == EntryKind::kFree) {
      return absl::FailedPreconditionError(absl::StrCat("Free of ", addr.ToString(), ": already freed"));
    }
    w->second.kind = EntryKind::kFree;
    w->second.data.clear();
    return absl::OkStatus();
  }
  if (!reads_.contains(addr.raw())) {
    absl::StatusOr<std::string> r = Read(addr, 1);
    if (!r.ok()) return r.status();
  }
  writes_[addr.raw()] = WriteEntry{addr, reads_.at(addr.raw()), EntryKind::kFree, 0, std::string()};
  return absl::OkStatus();
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::Validate() {
  for (const auto& [raw, version] : reads_) {
    if (writes_.contains(raw)) continue;
    const GlobalAddress addr = GlobalAddress::FromRaw(raw);
    // The first line, not just the header: its line version must match too,
    // start bit included. Once the object is freed its address may fall
    // inside a newer object of another size class (its block reused), where
    // the header word is payload that can equal the header read; that line's
    // version word has no start bit (object.h).
    absl::StatusOr<fabric::RemoteAddress> at = client_->cache_.ResolvePrimary(addr, kLineSize);
    if (!at.ok()) return at.status();
    const auto* line = reinterpret_cast<const uint8_t*>(client_->scratch_.data());
    absl::Status s =
        fabric::SyncRead(*client_->read_queue_, *at, client_->scratch_.data(), kLineSize);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("VALIDATE ", addr.ToString(), ": ", s.message()));
    uint64_t header;
    std::memcpy(&header, line, 8);
    if (CheckSnapshot(line, 1).ok() && VersionOf(header) == version) continue;
    if (IsLocked(header)) {
      return absl::AbortedError(absl::StrCat("VALIDATE: ", addr.ToString(), " was read at version ",
                                             version, " and is now locked"));
    }
    if (IsAllocated(header) && VersionOf(header) == version) {
      return absl::AbortedError(
          absl::StrCat("VALIDATE: ", addr.ToString(), " was read at version ", version,
                       " and holds other bytes now (the header matches, the line does not",
                       " start an object: the object was freed and its block reused)"));
    }
    return absl::AbortedError(absl::StrCat("VALIDATE: ", addr.ToString(), " was read at version ",
                                           version, " and is now at ", VersionOf(header),
                                           IsAllocated(header) ? "" : " (freed)"));
  }
  return absl::OkStatus();
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::LockAll(absl::btree_map<fabric::MachineId, LockRequest>& by_primary,
                                     std::vector<fabric::MachineId>* locked) {
  std::vector<typename TxClient<F>::template PhaseCall<LockRequest>> to;
  for (const auto& [m, req] : by_primary) to.push_back({m, &req});
  const std::vector<Reply> replies =
      client_->template CallAll<LockRequest>(kLock, to, CommitStep::kLock);
  absl::Status failed;  // the first refusal or failure, in machine order
  auto req = by_primary.begin();
  for (size_t i = 0; i < replies.size(); ++i, ++req) {
    const absl::Status s = StatusOf(replies[i]);
    // Locked, or no answer (a slow machine may still serve the LOCK later):
    // a failed commit sends it an ABORT, which follows the LOCK on its ring.
    if (s.ok() || absl::IsDeadlineExceeded(s)) locked->push_back(req->first);
    if (!s.ok()) {
      if (failed.ok()) failed = s;
      continue;
    }
    std::vector<WriteEntry>& entries = req->second.entries;
    for (size_t e = 0; e < entries.size() && e < replies[i].slot_bytes.size(); ++e) {
      entries[e].slot_bytes = replies[i].slot_bytes[e];
    }
  }
  if (replies.size() < to.size()) {
    return absl::CancelledError("coordinator crashed before LOCK (fault injection)");
  }
  return failed;
}

template <typename F>
  requires fabric::Fabric<F>
template <typename Req>
absl::optional<absl::Status> Transaction<F>::Persist(fabric::MachineId m, Handler h, const Req& req,
                                                     absl::Status why, uint64_t config) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + client_->options_.outcome_timeout;
  bool reported = false;
  while (absl::Now() < deadline) {
    // The same message again (COMMIT-BACKUP and COMMIT-PRIMARY are
    // idempotent): accepted once a slow machine answers, or once a machine
    // still resuming into this configuration has resumed. No recovery will
    // decide this transaction in that case: the one that machine was in
    // collected its records before the transaction began.
    const absl::Status again = StatusOf(client_->Call(m, h, req));
    if (again.ok()) return absl::nullopt;
    why = again;
    const TxClientOptions& o = client_->options_;
    if (!reported && o.suspect && absl::IsDeadlineExceeded(again) && absl::Now() - start >= o.suspect_after) {
      // Silent, not refusing: maybe slow but alive, renewing its lease, so no
      // recovery would ever decide this commit. The CM settles it.
      reported = true;
      ++client_->stats_.suspected;
      o.suspect(m);
    }
    for (fabric::MachineId q : client_->ReplicaMachines()) {
      Reply r = client_->Call(q, kOutcome, TxRequest{client_->config(), id_});
      if (!StatusOf(r).ok()) continue;
      if (r.value == static_cast<uint64_t>(Outcome::kCommitted)) return absl::OkStatus();
      if (r.value == static_cast<uint64_t>(Outcome::kAborted)) {
        ++client_->stats_.aborted;
        return absl::AbortedError(absl::StrCat("transaction aborted by recovery after: ", why.message()));
      }
      if (r.aux > config) {
        // That machine finished recovering into a newer configuration and
        // recovery decided (and remembers) every transaction with a surviving
        // record: this one had none, so it cannot have committed.
        ++client_->stats_.aborted;
        return absl::AbortedError(
            absl::StrCat("transaction not committed (no record survived the reconfiguration) after: ", why.message()));
      }
    }
    absl::SleepFor(absl::Milliseconds(1));  // recovery or a resume runs elsewhere: poll
  }
  ++client_->stats_.unknown;
  return absl::UnknownError(absl::StrCat("commit outcome unknown (no decision within ",
                                         absl::FormatDuration(client_->options_.outcome_timeout),
                                         ") after: ", why.message()));
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::EndPersisted(absl::Status decided,
                                          const absl::btree_set<fabric::MachineId>& participants,
                                          uint64_t config) {
  if (absl::IsUnknown(decided)) {
    KeepUndecided(participants, config);
  } else {
    Finish();
  }
  return decided;
}

template <typename F>
  requires fabric::Fabric<F>
absl::Status Transaction<F>::Commit() {
  if (done_) return absl::FailedPreconditionError("Commit: the transaction has finished");
  if (absl::Status s = client_->Admitted(); !s.ok()) return Fail(s);
  done_ = true;
  TxClientStats& stats = client_->stats_;
  CommitTimes& times = client_->times_;
  times = CommitTimes{};
  if (writes_.empty()) {
    absl::Time t0 = absl::Now();
    absl::Status s = reads_.size() > 1 ? Validate() : absl::OkStatus();
    times.validate = absl::Now() - t0;
    Finish();
    if (!s.ok()) {
      ++(absl::IsAborted(s) ? stats.aborted : stats.unavailable);
      return s;
    }
    ++stats.read_only;
    return absl::OkStatus();
  }
  client_->RetryTruncates();
  // Group the write set by primary and by backup.
  const uint64_t config = client_->config();
  const Watermark watermark = this->watermark();
  absl::btree_set<uint32_t> regions;
  absl::btree_map<fabric::MachineId, LockRequest> by_primary;
  for (auto& [raw, w] : writes_) {
    absl::StatusOr<const RegionInfo*> info = client_->cache_.Lookup(w.addr.region());
    if (!info.ok()) return Fail(info.status());
    // Every machine of the commit must be reachable before anything locks
    // (checked once per region): a COMMIT-BACKUP that can never be sent
    // would leave the outcome unknown and the primaries' locks held until
    // some recovery, which nothing starts (farmd_restart_test phase 2 saw
    // reads fail on such a lock for 60 s after a client learned a new backup
    // from its lease renewal).
    if (regions.insert(w.addr.region()).second) {
      if (absl::Status s = client_->CheckRings(**info); !s.ok()) return Fail(s);
    }
    by_primary[(*info)->primary().machine].entries.push_back(w);
  }
  for (auto& [m, req] : by_primary) {
    req.config = config;
    req.tx = id_;
    req.regions.assign(regions.begin(), regions.end());
    req.watermark = watermark;
  }
  absl::Time t = absl::Now();
  std::vector<fabric::MachineId> locked;
  absl::Status s = LockAll(by_primary, &locked);
  times.lock = absl::Now() - t;
  if (absl::IsCancelled(s)) return s;
  if (!s.ok()) return Fail(s, locked);
  t = absl::Now();
  if (client_->options_.crash_before && client_->options_.crash_before(CommitStep::kValidate, 0)) {
    return absl::CancelledError("coordinator crashed before VALIDATE (fault injection)");
  }
  s = Validate();
  times.validate = absl::Now() - t;
  if (!s.ok()) return Fail(s, locked);
  // COMMIT-BACKUP: every backup of every written region logs its entries.
  absl::btree_map<fabric::MachineId, LockRequest> by_backup;
  for (auto& [m, req] : by_primary) {
    for (const WriteEntry& e : req.entries) {
      const RegionInfo* info = *client_->cache_.Lookup(e.addr.region());
      for (size_t i = 1; i < info->replicas.size(); ++i) by_backup[info->replicas[i].machine].entries.push_back(e);
    }
  }
  absl::btree_set<fabric::MachineId> all(locked.begin(), locked.end());  // every participant
  for (const auto& [m, req] : by_backup) all.insert(m);
  t = absl::Now();
  std::vector<typename TxClient<F>::template PhaseCall<LockRequest>> backups;
  for (auto& [m, req] : by_backup) {
    req.config = config;
    req.tx = id_;
    req.regions.assign(regions.begin(), regions.end());
    req.watermark = watermark;
    backups.push_back({m, &req});
  }
  const std::vector<Reply> logged =
      client_->template CallAll<LockRequest>(kCommitBackup, backups, CommitStep::kCommitBackup);
  if (logged.size() < backups.size()) {
    return absl::CancelledError("coordinator crashed before COMMIT-BACKUP (fault injection)");
  }
  for (size_t i = 0; i < backups.size(); ++i) {
    const fabric::MachineId m = backups[i].machine;
    const LockRequest& req = *backups[i].req;
    s = StatusOf(logged[i]);
    if (!s.ok()) {
      if (absl::optional<absl::Status> decided = Persist(m, kCommitBackup, req, s, config)) {
        if (decided->ok()) ++stats.committed;  // by a recovery, which also truncated it
        return EndPersisted(*decided, all, config);
      }
    }
  }
  times.commit_backup = absl::Now() - t;
  t = absl::Now();
  const TxRequest commit{config, id_, watermark};
  const auto primaries = TxClient<F>::To(locked, commit);
  const std::vector<Reply> applied =
      client_->template CallAll<TxRequest>(kCommitPrimary, primaries, CommitStep::kCommitPrimary);
  if (applied.size() < primaries.size()) {
    return absl::CancelledError("coordinator crashed before COMMIT-PRIMARY (fault injection)");
  }
  for (size_t i = 0; i < primaries.size(); ++i) {
    const fabric::MachineId m = primaries[i].machine;
    s = StatusOf(applied[i]);
    if (!s.ok()) {
      // Committed elsewhere already: `m` still has the COMMIT-PRIMARY queued
      // (or a recovery decided), so go on to TRUNCATE (else the backups would
      // keep the records and never apply them).
      absl::optional<absl::Status> decided = Persist(m, kCommitPrimary, commit, s, config);
      if (decided && !decided->ok()) return EndPersisted(*decided, all, config);
    }
  }
  times.commit_primary = absl::Now() - t;
  ++stats.committed;
  t = absl::Now();
  if (!Truncate(all, config)) {
    return absl::CancelledError("coordinator crashed before TRUNCATE (fault injection; committed)");
  }
  times.truncate = absl::Now() - t;
  return absl::OkStatus();
}

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_INTERNAL_TRANSACTION_IMPL_H_
