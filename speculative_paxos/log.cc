#include "speculative_paxos/log.h"

// SHA256_Init / _Update / _Final are deprecated in OpenSSL 3.0 in favour of
// EVP_Digest*, but 3.0's EVP_DigestInit_ex2 frees and allocates the
// provider's context on every call, which took as much of a follower's CPU
// as the SHA-256 block itself (README, Measured, "One-block hash step").
#define OPENSSL_SUPPRESS_DEPRECATED
#include <endian.h>
#include <openssl/sha.h>
#include <string.h>

#include <algorithm>

#include "glog/logging.h"

namespace dctk::spaxos {
namespace {

const std::string& EmptyHash() {
  static const std::string* const empty = new std::string();
  return *empty;
}

// SHA-256's digest size: every hash in the chain but the empty log's "".
constexpr size_t kHashSize = SHA256_DIGEST_LENGTH;

// Spare entries kept for reuse: one default checkpoint interval's worth
// (CompactTo drops about that many at once).
constexpr size_t kMaxSpare = 4096;

// Writes `v` at `p` little-endian: the chain's byte order on every host.
void StoreLittleEndian64(unsigned char* p, uint64_t v) {
  v = htole64(v);
  memcpy(p, &v, sizeof(v));
}

}  // namespace

std::string ChainHash(absl::string_view prev, uint64_t client_id, uint64_t request_id,
                      absl::string_view op) {
  std::string out;
  ChainHash(prev, client_id, request_id, op, &out);
  return out;
}

void ChainHash(absl::string_view prev, uint64_t client_id, uint64_t request_id,
               absl::string_view op, std::string* out) {
  // The fixed part: prev as exactly kHashSize bytes, client id and request
  // id (little-endian). No length fields: prev and the ids have fixed sizes
  // and SHA-256's padding encodes the message's length, so op is determined.
  // 48 fixed bytes leave 7 for op in SHA-256's one-block limit of 55, where
  // the former layout (prev's length, prev, ids, op's size: 57) took two.
  unsigned char head[kHashSize + 2 * 8];
  SHA256_CTX ctx;
  if (prev.size() == kHashSize) {
    memcpy(head, prev.data(), kHashSize);
  } else if (prev.empty()) {  // the empty log
    memset(head, 0, kHashSize);
  } else {  // not a hash of ours (bad input): reduced to its SHA-256 first
    CHECK_EQ(SHA256_Init(&ctx), 1);
    CHECK_EQ(SHA256_Update(&ctx, prev.data(), prev.size()), 1);
    CHECK_EQ(SHA256_Final(head, &ctx), 1);
  }
  StoreLittleEndian64(head + kHashSize, client_id);
  StoreLittleEndian64(head + kHashSize + 8, request_id);
  CHECK_EQ(SHA256_Init(&ctx), 1);
  CHECK_EQ(SHA256_Update(&ctx, head, sizeof(head)), 1);
  CHECK_EQ(SHA256_Update(&ctx, op.data(), op.size()), 1);
  unsigned char md[kHashSize];
  CHECK_EQ(SHA256_Final(md, &ctx), 1);
  out->assign(reinterpret_cast<const char*>(md), kHashSize);
}

const LogEntry* Log::At(uint64_t slot) const {
  if (slot <= base_ || slot > end()) return nullptr;
  return entries_[slot - base_ - 1].get();
}

LogEntry* Log::MutableAt(uint64_t slot) {
  if (slot <= base_ || slot > end()) return nullptr;
  return entries_[slot - base_ - 1].get();
}

const std::string& Log::HashAt(uint64_t slot) const {
  CHECK(slot >= base_ && slot <= end())
      << "hash at slot " << slot << " outside the log (" << base_ << ", " << end() << "]";
  if (slot == 0) return EmptyHash();
  return slot == base_ ? base_hash_ : entries_[slot - base_ - 1]->hash;
}

bool Log::Holds(uint64_t slot, absl::string_view hash) const {
  return slot >= base_ && slot <= end() && HashAt(slot) == hash;
}

LogEntry& Log::Append(uint64_t client_id, uint64_t request_id, std::string op,
                      const transport::Address& client) {
  auto& mine = by_client_[client_id];
  CHECK(mine.empty() || mine.back().first < request_id)
      << "client " << client_id << " request " << request_id << " out of order";
  CHECK(!mine.empty() || LatestRequest(client_id) < request_id)
      << "client " << client_id << " request " << request_id << " below a compacted one";
  std::unique_ptr<LogEntry> e;
  if (spare_.empty()) {
    e = std::make_unique<LogEntry>();
  } else {
    e = std::move(spare_.back());
    spare_.pop_back();
  }
  e->slot = end() + 1;
  e->client_id = client_id;
  e->request_id = request_id;
  ChainHash(HashAt(end()), client_id, request_id, op, &e->hash);
  e->op = std::move(op);
  e->result.clear();
  e->client = client;
  e->state = EntryState::kSpeculative;
  mine.emplace_back(request_id, e->slot);
  entries_.push_back(std::move(e));
  return *entries_.back();
}

void Log::Recycle(std::unique_ptr<LogEntry> e) {
  if (spare_.size() >= kMaxSpare) return;
  std::string().swap(e->op);  // ops and results may be large: not kept
  std::string().swap(e->result);
  spare_.push_back(std::move(e));
}

void Log::TruncateAfter(uint64_t slot) {
  CHECK_GE(slot, committed_) << "truncating committed entries";
  while (end() > slot) {
    const LogEntry& e = *entries_.back();
    auto it = by_client_.find(e.client_id);
    CHECK(it != by_client_.end() && !it->second.empty() && it->second.back().second == e.slot);
    it->second.pop_back();
    if (it->second.empty()) by_client_.erase(it);
    Recycle(std::move(entries_.back()));
    entries_.pop_back();
  }
}

void Log::Commit(uint64_t slot) {
  CHECK_LE(slot, end());
  for (uint64_t s = std::max(committed_, base_) + 1; s <= slot; ++s) {
    entries_[s - base_ - 1]->state = EntryState::kCommitted;
  }
  committed_ = std::max(committed_, slot);
}

void Log::CompactTo(uint64_t slot) {
  CHECK_LE(slot, committed_) << "compacting uncommitted entries";
  while (base_ < slot) {
    LogEntry& e = *entries_.front();
    auto it = by_client_.find(e.client_id);
    CHECK(it != by_client_.end() && it->second.front().second == e.slot);
    it->second.pop_front();
    // Only the client's newest compacted entry becomes its record.
    const bool newest = it->second.empty() || it->second.front().second > slot;
    if (it->second.empty()) by_client_.erase(it);
    if (e.slot == slot) base_hash_ = e.hash;
    if (newest) {
      LogEntry& record = records_[e.client_id];
      record = e;  // a copy into the record's buffers; the entry is reused
      record.op.clear();
    }
    Recycle(std::move(entries_.front()));
    entries_.pop_front();
    ++base_;
  }
}

void Log::Reset(uint64_t slot, std::string hash,
                const google::protobuf::RepeatedPtrField<ClientRecord>& clients) {
  while (!entries_.empty()) {
    Recycle(std::move(entries_.back()));
    entries_.pop_back();
  }
  by_client_.clear();
  records_.clear();
  base_ = slot;
  base_hash_ = std::move(hash);
  committed_ = slot;
  for (const ClientRecord& c : clients) {
    LogEntry& e = records_[c.client_id()];
    e.slot = c.slot();
    e.client_id = c.client_id();
    e.request_id = c.request_id();
    e.hash = c.hash();
    e.result = c.result();
    e.client = transport::Address(c.client_ip(), c.client_port());
    e.state = EntryState::kCommitted;
  }
}

void Log::ExportClients(uint64_t slot,
                        google::protobuf::RepeatedPtrField<ClientRecord>* out) const {
  CHECK(slot >= base_ && slot <= committed_);
  absl::flat_hash_map<uint64_t, const LogEntry*> newest;
  newest.reserve(records_.size() + by_client_.size());
  for (const auto& [client, e] : records_) newest[client] = &e;
  for (uint64_t s = base_ + 1; s <= slot; ++s) {
    const LogEntry& e = *entries_[s - base_ - 1];
    newest[e.client_id] = &e;
  }
  std::vector<const LogEntry*> sorted;
  sorted.reserve(newest.size());
  for (const auto& [client, e] : newest) sorted.push_back(e);
  // Client order, so equal logs give byte-equal checkpoints.
  std::sort(sorted.begin(), sorted.end(),
            [](const LogEntry* a, const LogEntry* b) { return a->client_id < b->client_id; });
  for (const LogEntry* e : sorted) {
    ClientRecord* c = out->Add();
    c->set_client_id(e->client_id);
    c->set_request_id(e->request_id);
    c->set_slot(e->slot);
    c->set_hash(e->hash);
    c->set_result(e->result);
    c->set_client_ip(e->client.ip());
    c->set_client_port(e->client.port());
  }
}

const LogEntry* Log::Find(uint64_t client_id, uint64_t request_id) const {
  auto it = by_client_.find(client_id);
  if (it != by_client_.end()) {
    // Request ids of one client increase with slot (Append callers keep it so).
    const auto& v = it->second;
    if (v.back().first < request_id) return nullptr;  // the common case: a new request
    auto r = std::lower_bound(v.begin(), v.end(), std::make_pair(request_id, uint64_t{0}));
    if (r != v.end() && r->first == request_id) return entries_[r->second - base_ - 1].get();
  }
  auto rec = records_.find(client_id);
  if (rec != records_.end() && rec->second.request_id == request_id) return &rec->second;
  return nullptr;
}

uint64_t Log::LatestRequest(uint64_t client_id, uint64_t slot) const {
  auto it = by_client_.find(client_id);
  if (it != by_client_.end()) {
    for (auto r = it->second.rbegin(); r != it->second.rend(); ++r) {
      if (r->second <= slot) return r->first;
    }
  }
  auto rec = records_.find(client_id);
  return rec != records_.end() && rec->second.slot <= slot ? rec->second.request_id : 0;
}

void Log::Export(uint64_t from, uint64_t to,
                 google::protobuf::RepeatedPtrField<Entry>* out) const {
  for (uint64_t s = std::max<uint64_t>(from, base_ + 1); s <= to && s <= end(); ++s) {
    ToWire(*entries_[s - base_ - 1], out->Add());
  }
}

void ToWire(const LogEntry& e, Entry* out) {
  out->set_slot(e.slot);
  out->set_client_id(e.client_id);
  out->set_request_id(e.request_id);
  out->set_op(e.op);
  out->set_hash(e.hash);
  out->set_client_ip(e.client.ip());
  out->set_client_port(e.client.port());
}

}  // namespace dctk::spaxos
