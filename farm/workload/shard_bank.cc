#include "farm/workload/shard_bank.h"

namespace dctk::farm::workload {

std::string Encode(const ShardTransferArgs& a) {
  std::string out;
  for (uint64_t v : {a.from.raw(), a.to.raw(), a.journal.raw(), a.amount, a.journal_id}) {
    out += client::EncodeU64(v);
  }
  return out;
}

absl::StatusOr<ShardTransferArgs> DecodeShardTransferArgs(absl::string_view bytes) {
  if (bytes.size() != 40) {
    return absl::InvalidArgumentError(absl::StrCat("shard transfer: ", bytes.size(), " argument bytes, not 40"));
  }
  auto at = [&](int i) { return client::DecodeU64(bytes.substr(8 * i, 8)); };
  return ShardTransferArgs{GlobalAddress::FromRaw(at(0)), GlobalAddress::FromRaw(at(1)),
                           GlobalAddress::FromRaw(at(2)), at(3), at(4)};
}

}  // namespace dctk::farm::workload
