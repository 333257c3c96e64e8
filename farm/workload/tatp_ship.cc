#include "farm/workload/tatp_ship.h"

#include "absl/strings/str_cat.h"

namespace dctk::farm::workload {
namespace {
constexpr size_t kAddresses = 13;  // subscriber + 3 x 4 rows
constexpr size_t kArgsBytes = 8 * kAddresses + 4 * 8;
}  // namespace

std::string EncodeTatpArgs(const Tatp::Directory& d, const TatpDraw& draw) {
  std::string out;
  out.reserve(kArgsBytes);
  out += client::EncodeU64(d.subscriber.raw());
  for (const auto* rows : {&d.access_info, &d.special_facility, &d.call_forwarding}) {
    for (GlobalAddress a : *rows) out += client::EncodeU64(a.raw());
  }
  for (uint64_t v : {static_cast<uint64_t>(draw.kind), static_cast<uint64_t>(draw.type),
                     static_cast<uint64_t>(draw.slot), draw.value}) {
    out += client::EncodeU64(v);
  }
  return out;
}

absl::Status DecodeTatpArgs(absl::string_view bytes, Tatp::Directory* d, TatpDraw* draw) {
  if (bytes.size() != kArgsBytes) {
    return absl::InvalidArgumentError(absl::StrCat("tatp: ", bytes.size(), " argument bytes, not ", kArgsBytes));
  }
  size_t at = 0;
  auto next = [&] {
    const uint64_t v = client::DecodeU64(bytes.substr(at, 8));
    at += 8;
    return v;
  };
  d->subscriber = GlobalAddress::FromRaw(next());
  for (auto* rows : {&d->access_info, &d->special_facility, &d->call_forwarding}) {
    for (GlobalAddress& a : *rows) a = GlobalAddress::FromRaw(next());
  }
  const uint64_t kind = next(), type = next(), slot = next();
  draw->value = next();
  if (kind >= static_cast<uint64_t>(kTatpTxKinds) || type >= 4 || slot >= 3) {
    return absl::InvalidArgumentError(absl::StrCat("tatp: bad draw (kind ", kind, ", type ", type, ", slot ", slot, ")"));
  }
  draw->kind = static_cast<TatpTx>(kind);
  draw->type = static_cast<int>(type);
  draw->slot = static_cast<int>(slot);
  return absl::OkStatus();
}

}  // namespace dctk::farm::workload
