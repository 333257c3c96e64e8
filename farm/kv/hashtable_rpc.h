// Multi-get by RPC: each machine holding a table shard serves lookups of a
// batch of keys in ONE request message (over the FaRM message rings,
// farm/msg/rpc.h), looking them up in its own memory; the client splits a
// batch into one message per machine and sends them all at once. This is the multi-get of the FaRM
// paper's trade-off: per-message costs are amortized over the keys a
// machine gets, so for a fixed batch the gain shrinks as the batch spreads
// over more machines. (HashTableClient::MultiLookup is the one-sided-read
// alternative, which costs the holders no CPU.)
//
// Example:
//   ServeLookups(server_endpoint, *local_reader);              // on each holder
//   RpcMultiGetClient<ShmFabric> c(client_endpoint, {2, 3, 4}, absl::Seconds(1));
//   std::vector<absl::StatusOr<absl::optional<Value>>> got = c.MultiLookup(keys);
#ifndef DCTK_FARM_KV_HASHTABLE_RPC_H_
#define DCTK_FARM_KV_HASHTABLE_RPC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/fabric/fabric.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/hashtable_reader.h"
#include "farm/msg/rpc.h"

namespace dctk::farm::kv {

inline constexpr uint16_t kMultiLookupRpc = 0x4b56;
// Reply per key: [code:1][value:32]; code 0 absent, 1 found, else an absl status code + 2.
inline constexpr size_t kRpcAnswerBytes = 1 + sizeof(Value);

// Serves kMultiLookupRpc on `endpoint` from `table` (a reader of this
// machine's own shard). The request is the keys, 16 bytes each.
template <typename F>
  requires fabric::Fabric<F>
void ServeLookups(msg::RpcEndpoint<F>& endpoint, HashTableReader<F>& table) {
  endpoint.Register(kMultiLookupRpc, [&table](fabric::MachineId, absl::Span<const uint8_t> request) {
    const size_t n = request.size() / sizeof(Key);
    std::string reply(n * kRpcAnswerBytes, '\0');
    for (size_t i = 0; i < n; ++i) {
      Key k;
      std::memcpy(k.data(), request.data() + i * sizeof(Key), sizeof(Key));
      absl::StatusOr<absl::optional<Value>> v = table.Lookup(k);
      char* out = reply.data() + i * kRpcAnswerBytes;
      if (!v.ok()) {
        out[0] = static_cast<char>(2 + static_cast<int>(v.status().code()));
      } else if (v->has_value()) {
        out[0] = 1;
        std::memcpy(out + 1, (*v)->data(), sizeof(Value));
      }
    }
    return reply;
  });
}

template <typename F>
  requires fabric::Fabric<F>
class RpcMultiGetClient {
 public:
  using Result = absl::StatusOr<absl::optional<Value>>;

  // shard_machines[i] holds the keys with ShardOf(key, shard_machines.size()) == i.
  RpcMultiGetClient(msg::RpcEndpoint<F>& endpoint, std::vector<fabric::MachineId> shard_machines,
                    absl::Duration timeout)
      : endpoint_(endpoint), machines_(std::move(shard_machines)), timeout_(timeout) {}

  // One request message per machine that holds any of the keys, all sent
  // before any reply is awaited (RpcEndpoint::CallAll), so the machines
  // serve their parts at the same time. A machine that fails (no reply in
  // `timeout`, no ring) fails only its own keys.
  std::vector<Result> MultiLookup(absl::Span<const Key> keys) {
    std::vector<Result> results(keys.size(), absl::optional<Value>());
    const uint32_t n = static_cast<uint32_t>(machines_.size());
    std::vector<std::vector<uint32_t>> by_shard(n);
    for (uint32_t i = 0; i < keys.size(); ++i) by_shard[ShardOf(keys[i], n)].push_back(i);
    std::vector<uint32_t> shards;  // of each request, in order
    std::vector<std::string> requests;
    for (uint32_t s = 0; s < n; ++s) {
      if (by_shard[s].empty()) continue;
      std::string& request = requests.emplace_back(by_shard[s].size() * sizeof(Key), '\0');
      for (size_t j = 0; j < by_shard[s].size(); ++j) {
        std::memcpy(request.data() + j * sizeof(Key), keys[by_shard[s][j]].data(), sizeof(Key));
      }
      shards.push_back(s);
    }
    std::vector<typename msg::RpcEndpoint<F>::Outgoing> calls;
    calls.reserve(requests.size());
    for (size_t c = 0; c < requests.size(); ++c) {
      calls.push_back({machines_[shards[c]], kMultiLookupRpc,
                       absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(requests[c].data()),
                                           requests[c].size())});
    }
    messages_ += calls.size();
    const std::vector<absl::StatusOr<std::string>> replies = endpoint_.CallAll(calls, timeout_);
    for (size_t c = 0; c < calls.size(); ++c) {
      Answer(machines_[shards[c]], replies[c], by_shard[shards[c]], results);
    }
    return results;
  }

  uint64_t messages() const { return messages_; }

 private:
  // Fills results[keys[j]] from `machine`'s reply to its request for those keys.
  static void Answer(fabric::MachineId machine, const absl::StatusOr<std::string>& reply,
                     absl::Span<const uint32_t> keys, std::vector<Result>& results) {
    absl::Status failed = reply.status();
    if (reply.ok() && reply->size() != keys.size() * kRpcAnswerBytes) {
      failed =
          absl::DataLossError(absl::StrCat("multi-get reply from machine ", machine, " has ",
                                           reply->size(), " bytes for ", keys.size(), " keys"));
    }
    for (size_t j = 0; j < keys.size(); ++j) {
      Result& r = results[keys[j]];
      if (!failed.ok()) {
        r = failed;
        continue;
      }
      const char* a = reply->data() + j * kRpcAnswerBytes;
      if (a[0] == 1) {
        Value v;
        std::memcpy(v.data(), a + 1, sizeof(Value));
        r = absl::optional<Value>(v);
      } else if (a[0] != 0) {
        r = absl::Status(static_cast<absl::StatusCode>(a[0] - 2),
                         absl::StrCat("lookup at machine ", machine, " failed"));
      }
    }
  }

  msg::RpcEndpoint<F>& endpoint_;
  const std::vector<fabric::MachineId> machines_;
  const absl::Duration timeout_;
  uint64_t messages_ = 0;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_RPC_H_
