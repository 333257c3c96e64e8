#include "farm/client/ship.h"

#include <cstring>

namespace dctk::farm::client {
namespace {

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutBytes(std::string* out, absl::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

class Reader {
 public:
  Reader(absl::string_view in, const char* what) : in_(in), what_(what) {}
  template <typename T>
  void Get(T* v) {
    if (in_.size() < sizeof(T)) {
      failed_ = true;
      return;
    }
    std::memcpy(v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
  }
  void GetBytes(std::string* s) {
    uint32_t n = 0;
    Get(&n);
    if (failed_ || in_.size() < n) {
      failed_ = true;
      return;
    }
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
  }
  absl::Status status() const {
    if (failed_ || !in_.empty()) {
      return absl::DataLossError(
          absl::StrCat("malformed ", what_, " (", failed_ ? "truncated" : "trailing bytes", ")"));
    }
    return absl::OkStatus();
  }

 private:
  absl::string_view in_;
  const char* what_;
  bool failed_ = false;
};

}  // namespace

std::string Encode(const ShipRequest& r) {
  std::string out;
  Put(&out, r.config);
  Put(&out, r.id);
  Put(&out, r.procedure);
  PutBytes(&out, r.args);
  Put(&out, r.watermark.tx);
  Put(&out, r.watermark.incarnation);
  return out;
}

std::string Encode(const ShipReply& r) {
  std::string out;
  Put<int32_t>(&out, r.code);
  Put(&out, r.config);
  Put<uint8_t>(&out, r.remembered ? 1 : 0);
  PutBytes(&out, r.message);
  PutBytes(&out, r.result);
  return out;
}

absl::StatusOr<ShipRequest> DecodeShipRequest(absl::string_view bytes) {
  Reader in(bytes, "shipped transaction request");
  ShipRequest r;
  in.Get(&r.config);
  in.Get(&r.id);
  in.Get(&r.procedure);
  in.GetBytes(&r.args);
  in.Get(&r.watermark.tx);
  in.Get(&r.watermark.incarnation);
  if (absl::Status s = in.status(); !s.ok()) return s;
  if (r.watermark.tx != 0 &&
      (tx::TxStream(r.watermark.tx) != tx::TxStream(r.id) || tx::TxBefore(r.id, r.watermark.tx))) {
    return absl::DataLossError(absl::StrCat("malformed shipped transaction request ", r.id,
                                            ": watermark ", r.watermark.tx,
                                            " is not at or below it in its client's stream"));
  }
  return r;
}

absl::StatusOr<ShipReply> DecodeShipReply(absl::string_view bytes) {
  Reader in(bytes, "shipped transaction reply");
  ShipReply r;
  int32_t code = 0;
  uint8_t remembered = 0;
  in.Get(&code);
  in.Get(&r.config);
  in.Get(&remembered);
  in.GetBytes(&r.message);
  in.GetBytes(&r.result);
  if (absl::Status s = in.status(); !s.ok()) return s;
  r.code = code;
  r.remembered = remembered != 0;
  return r;
}

}  // namespace dctk::farm::client
