#include "farm/tx/wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dctk::farm::tx {
namespace {

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void PutBytes(absl::string_view s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(absl::string_view in, const char* what) : in_(in), what_(what) {}
  template <typename T>
  bool Get(T* v) {
    if (in_.size() < sizeof(T)) return Fail();
    std::memcpy(v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetBytes(std::string* s) {
    uint32_t n;
    if (!Get(&n) || in_.size() < n) return Fail();
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  size_t remaining() const { return in_.size(); }
  bool failed() const { return failed_; }
  absl::Status status() const {
    if (failed_ || !in_.empty()) {
      return absl::DataLossError(absl::StrCat("malformed ", what_, " message (",
                                              failed_ ? "truncated" : "trailing bytes", ")"));
    }
    return absl::OkStatus();
  }

 private:
  bool Fail() {
    failed_ = true;
    return false;
  }
  absl::string_view in_;
  const char* what_;
  bool failed_ = false;
};

// Bounds on counts read from the wire, so a corrupt length cannot make us
// allocate without limit (a ring message is at most 64 KB anyway).
constexpr uint32_t kMaxCount = 1 << 16;

void PutWatermark(Writer& w, const Watermark& watermark) {
  if (watermark.tx == 0) return;
  w.Put(watermark.tx);
  if (watermark.incarnation != 0) w.Put(watermark.incarnation);
}

// The optional watermark after a request of `tx`: 8 bytes of the same
// coordinator stream, at most tx, then optionally its coordinator's
// incarnation (8 bytes, not 0).
absl::Status GetWatermark(Reader& rd, TxId tx, Watermark* watermark, const char* what) {
  if (rd.remaining() == 0) return absl::OkStatus();
  if (rd.remaining() != sizeof(TxId) && rd.remaining() != 2 * sizeof(TxId)) {
    return absl::DataLossError(
        absl::StrCat("malformed ", what, " message: ", rd.remaining(),
                     " bytes after the request (a watermark is 8, 16 with its "
                     "coordinator's incarnation)"));
  }
  const bool incarnation = rd.remaining() == 2 * sizeof(TxId);
  rd.Get(&watermark->tx);
  if (incarnation) rd.Get(&watermark->incarnation);
  if (watermark->tx == 0 || TxStream(watermark->tx) != TxStream(tx)) {
    return absl::DataLossError(absl::StrCat(
        "malformed ", what, " message: watermark ", watermark->tx, " is not of transaction ", tx,
        "'s coordinator (machine ", TxCoordinator(tx), ", slot ", TxStream(tx) & 0xff, ")"));
  }
  if (incarnation && watermark->incarnation == 0) {
    return absl::DataLossError(absl::StrCat("malformed ", what,
                                            " message: incarnation 0 after watermark ",
                                            watermark->tx, " (0 is sent as nothing)"));
  }
  if (TxBefore(tx, watermark->tx)) {
    return absl::DataLossError(absl::StrCat("malformed ", what, " message: watermark ",
                                            watermark->tx, " is above transaction ", tx,
                                            " itself, which its coordinator has not finished"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Encode(const LockRequest& r) {
  Writer w;
  w.Put(r.config);
  w.Put(r.tx);
  w.Put<uint32_t>(static_cast<uint32_t>(r.regions.size()));
  for (uint32_t id : r.regions) w.Put(id);
  w.Put<uint32_t>(static_cast<uint32_t>(r.entries.size()));
  for (const WriteEntry& e : r.entries) {
    w.Put(e.addr.raw());
    w.Put(e.version);
    w.Put(static_cast<uint8_t>(e.kind));
    w.Put(e.slot_bytes);
    w.PutBytes(e.data);
  }
  PutWatermark(w, r.watermark);
  return w.Take();
}

absl::StatusOr<LockRequest> DecodeLockRequest(absl::string_view bytes) {
  Reader rd(bytes, "LOCK/COMMIT-BACKUP");
  LockRequest r;
  uint32_t n = 0;
  if (rd.Get(&r.config) && rd.Get(&r.tx) && rd.Get(&n) && n <= kMaxCount) {
    r.regions.resize(n);
    for (uint32_t& id : r.regions) rd.Get(&id);
    if (rd.Get(&n) && n <= kMaxCount) {
      r.entries.resize(n);
      for (WriteEntry& e : r.entries) {
        uint64_t raw = 0;
        uint8_t kind = 0;
        rd.Get(&raw) && rd.Get(&e.version) && rd.Get(&kind) && rd.Get(&e.slot_bytes) && rd.GetBytes(&e.data);
        e.addr = GlobalAddress::FromRaw(raw);
        if (kind > static_cast<uint8_t>(EntryKind::kBlockMark)) {
          return absl::DataLossError(absl::StrCat("malformed LOCK message: entry kind ", kind));
        }
        e.kind = static_cast<EntryKind>(kind);
      }
    } else {
      return absl::DataLossError("malformed LOCK message: bad entry count");
    }
  } else {
    return absl::DataLossError("malformed LOCK message: bad header or region count");
  }
  if (!rd.failed()) {
    if (absl::Status w = GetWatermark(rd, r.tx, &r.watermark, "LOCK/COMMIT-BACKUP"); !w.ok())
      return w;
  }
  absl::Status s = rd.status();
  if (!s.ok()) return s;
  return r;
}

std::string Encode(const TxRequest& r) {
  Writer w;
  w.Put(r.config);
  w.Put(r.tx);
  PutWatermark(w, r.watermark);
  return w.Take();
}

absl::StatusOr<TxRequest> DecodeTxRequest(absl::string_view bytes) {
  Reader rd(bytes, "transaction");
  TxRequest r;
  if (rd.Get(&r.config) && rd.Get(&r.tx)) {
    if (absl::Status w = GetWatermark(rd, r.tx, &r.watermark, "transaction"); !w.ok()) return w;
  }
  absl::Status s = rd.status();
  if (!s.ok()) return s;
  return r;
}

std::string Encode(const AllocRequest& r) {
  Writer w;
  w.Put(r.config);
  w.Put(r.tx);
  w.Put(r.region);
  w.Put(r.bytes);
  w.Put(r.near);
  return w.Take();
}

absl::StatusOr<AllocRequest> DecodeAllocRequest(absl::string_view bytes) {
  Reader rd(bytes, "ALLOC");
  AllocRequest r;
  rd.Get(&r.config) && rd.Get(&r.tx) && rd.Get(&r.region) && rd.Get(&r.bytes) && rd.Get(&r.near);
  absl::Status s = rd.status();
  if (!s.ok()) return s;
  return r;
}

std::string Encode(const Reply& r) {
  Writer w;
  w.Put(r.code);
  w.Put(r.value);
  w.Put(r.aux);
  w.PutBytes(r.message);
  w.Put<uint32_t>(static_cast<uint32_t>(r.slot_bytes.size()));
  for (uint32_t b : r.slot_bytes) w.Put(b);
  return w.Take();
}

absl::StatusOr<Reply> DecodeReply(absl::string_view bytes) {
  Reader rd(bytes, "reply");
  Reply r;
  uint32_t n = 0;
  if (rd.Get(&r.code) && rd.Get(&r.value) && rd.Get(&r.aux) && rd.GetBytes(&r.message) && rd.Get(&n)) {
    if (n > kMaxCount) return absl::DataLossError("malformed reply: bad slot count");
    r.slot_bytes.resize(n);
    for (uint32_t& b : r.slot_bytes) rd.Get(&b);
  }
  absl::Status s = rd.status();
  if (!s.ok()) return s;
  return r;
}

Reply ReplyFrom(const absl::Status& s, uint64_t value, uint64_t aux) {
  return Reply{static_cast<int>(s.code()), std::string(s.message()), value, aux};
}

absl::Status StatusOf(const Reply& r) {
  return absl::Status(static_cast<absl::StatusCode>(r.code), r.message);
}

}  // namespace dctk::farm::tx
