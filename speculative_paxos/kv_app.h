// KvApp: the replicated key-value store shipped with Speculative Paxos.
//
// Operations are KvOp protos (GET, PUT, CAS) and results KvResult protos, both
// serialized (snapshots: KvSnapshot). Each executed slot pushes an undo record (the key's previous
// value, or its absence), so Rollback restores the store exactly; Commit drops
// undo records that can no longer be needed. Helpers build and read ops for
// clients and tests.
//
// Example:
//   KvApp kv;
//   kv.Execute(1, KvApp::Put("k", "v"));
//   KvResult r = KvApp::ParseResult(kv.Execute(2, KvApp::Get("k")));  // r.value() == "v"
#ifndef DCTK_SPECULATIVE_PAXOS_KV_APP_H_
#define DCTK_SPECULATIVE_PAXOS_KV_APP_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/types/optional.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

class KvApp : public App {
 public:
  std::string Execute(uint64_t slot, absl::string_view op) override;
  void Rollback(uint64_t slot) override;
  void Commit(uint64_t slot) override;
  // The store as of `slot`: current data with the undo records after it applied.
  absl::StatusOr<std::string> Snapshot(uint64_t slot) override;
  absl::Status Restore(uint64_t slot, absl::string_view snapshot) override;

  // Current value of `key` (for tests and tools).
  absl::optional<std::string> Lookup(const std::string& key) const;
  size_t undo_depth() const { return undo_.size(); }

  static std::string Get(const std::string& key);
  static std::string Put(const std::string& key, const std::string& value);
  // Swaps in `value` if the key holds `expected` (absent when nullopt).
  static std::string Cas(const std::string& key, absl::optional<std::string> expected,
                         const std::string& value);
  // A result that does not parse reads as the default KvResult.
  static KvResult ParseResult(absl::string_view result);

 private:
  struct Undo {
    uint64_t slot;
    bool wrote;
    std::string key;
    absl::optional<std::string> previous;  // nullopt: key was absent
  };
  std::map<std::string, std::string> data_;
  std::deque<Undo> undo_;  // ascending slot
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_KV_APP_H_
