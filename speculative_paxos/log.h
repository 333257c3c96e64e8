// Log: a Speculative Paxos replica's log of requests, with its hash chain.
//
// Slots are numbered from 1. Each entry carries the hash of the whole log up
// to it: hash(slot) = SHA-256(hash(slot-1) || le64(client_id) ||
// le64(request_id) || op), hash(0) = "" (the empty log; 32 zero bytes in the
// step). The 48 fixed bytes leave room for an op of up to 7 bytes in one
// SHA-256 block. Equal hashes at a slot mean equal prefixes, so replicas and
// clients compare whole logs by one value. Entries up to
// committed() are final; later ones are speculative and may be truncated. The
// log also indexes entries by (client, request id) for duplicate detection.
//
// Compaction: CompactTo(slot) drops committed entries up to `slot` (base()),
// keeping the hash there and, per client, its newest compacted request with
// its reply (a client record), so Find() still answers duplicates of
// compacted requests and LatestRequest() still rejects older ones. Reset()
// replaces the whole log by a checkpoint's base and client records.
//
// Example:
//   Log log;
//   LogEntry& e = log.Append(/*client_id=*/7, /*request_id=*/1, "op", client_addr);
//   e.result = app.Execute(e.slot, e.op);
//   log.Commit(e.slot);
#ifndef DCTK_SPECULATIVE_PAXOS_LOG_H_
#define DCTK_SPECULATIVE_PAXOS_LOG_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/transport/address.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

// The chain step: hash of the log ending in this request after `prev`.
std::string ChainHash(absl::string_view prev, uint64_t client_id, uint64_t request_id,
                      absl::string_view op);
// The same into `out` (its buffer reused: no allocation once it held a hash).
void ChainHash(absl::string_view prev, uint64_t client_id, uint64_t request_id,
               absl::string_view op, std::string* out);

enum class EntryState { kSpeculative, kCommitted };

struct LogEntry {
  uint64_t slot = 0;
  uint64_t client_id = 0;
  uint64_t request_id = 0;
  std::string op;
  std::string result;  // filled in by the replica when the app executes op
  std::string hash;
  transport::Address client;
  EntryState state = EntryState::kSpeculative;
};

class Log {
 public:
  uint64_t end() const { return base_ + entries_.size(); }
  uint64_t committed() const { return committed_; }
  // Entries up to base() were compacted away (0: none).
  uint64_t base() const { return base_; }
  // Entries held in memory: end() - base().
  uint64_t size() const { return entries_.size(); }

  // nullptr when `slot` is compacted (<= base()) or past the end.
  const LogEntry* At(uint64_t slot) const;
  LogEntry* MutableAt(uint64_t slot);
  // Hash of the prefix ending at `slot` (base() <= slot <= end(); CHECK).
  const std::string& HashAt(uint64_t slot) const;
  // True when base() <= slot <= end() and the hash at `slot` is `hash`.
  bool Holds(uint64_t slot, absl::string_view hash) const;

  // Appends a request at end() + 1 and chains its hash. `request_id` must be
  // above LatestRequest(client_id) (CHECK): one client's ids rise with slot.
  LogEntry& Append(uint64_t client_id, uint64_t request_id, std::string op,
                   const transport::Address& client);
  // Removes every entry after `slot`; CHECK-fails below committed().
  void TruncateAfter(uint64_t slot);
  // Marks entries up to `slot` (<= end()) committed; never moves backwards.
  void Commit(uint64_t slot);

  // Drops entries up to `slot` (<= committed(); CHECK), keeping client records.
  void CompactTo(uint64_t slot);
  // Replaces the log by an empty one based at `slot` (committed, hash `hash`)
  // with these client records (a checkpoint's).
  void Reset(uint64_t slot, std::string hash,
             const google::protobuf::RepeatedPtrField<ClientRecord>& clients);
  // Client records as of `slot` (base() <= slot <= committed()): the records
  // of compacted entries updated by the entries up to `slot`.
  void ExportClients(uint64_t slot,
                     google::protobuf::RepeatedPtrField<ClientRecord>* out) const;
  size_t num_client_records() const { return records_.size(); }

  // The entry for this request, or nullptr. For a compacted request that is
  // its client's newest compacted one, its client record (op empty).
  const LogEntry* Find(uint64_t client_id, uint64_t request_id) const;
  // Highest request id of `client_id` at a slot <= `slot` (0 if none);
  // compacted requests count for any slot >= base().
  uint64_t LatestRequest(uint64_t client_id, uint64_t slot = UINT64_MAX) const;

  // Copies slots [from, to] into `out` as wire entries.
  void Export(uint64_t from, uint64_t to,
              google::protobuf::RepeatedPtrField<Entry>* out) const;

 private:
  // Takes an entry out of the log for reuse by Append.
  void Recycle(std::unique_ptr<LogEntry> e);

  // Slots base_+1 .. end(). Entries are held by pointer so they never move
  // (a LogEntry& stays valid while its slot is in the log) and are reused:
  // an appended entry comes from spare_ with its hash buffer, so appending
  // and compacting allocate nothing per entry in steady state.
  std::deque<std::unique_ptr<LogEntry>> entries_;
  std::vector<std::unique_ptr<LogEntry>> spare_;
  uint64_t base_ = 0;
  std::string base_hash_;
  uint64_t committed_ = 0;
  // Per client: (request id, slot) of its entries in the log, in slot order.
  absl::flat_hash_map<uint64_t, std::deque<std::pair<uint64_t, uint64_t>>> by_client_;
  // Per client: its newest compacted entry (op cleared).
  absl::flat_hash_map<uint64_t, LogEntry> records_;
};

// Wire form of a log entry, and back (result and state are local).
void ToWire(const LogEntry& e, Entry* out);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_LOG_H_
