#include "farm/tx/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "farm/tx/tx_log.h"

namespace dctk::farm::tx {
namespace {

// FARMCKP6: each watermark with its coordinator's incarnation (FARMCKP5:
// watermarks alone; FARMCKP4 kept the last committed ids). FARMCKP4 and later: objects' line-0
// version words carry the start bit (object.h); a FARMCKP3 image's objects would read as "not the
// start of an object".
constexpr char kMagic[] = "FARMCKP6";
constexpr size_t kFormatAt = 7;  // "FARMCKP" then the format's digit
constexpr char kEnd[] = "CKPTEND1";
constexpr size_t kMagicBytes = 8;

uint64_t Checksum(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutBytes(std::string& out, absl::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    if (in_.size() < sizeof(T)) return false;
    std::memcpy(v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetBytes(std::string* s) {
    uint64_t n;
    if (!Get(&n) || in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool GetRaw(std::string* s, size_t n) {
    if (in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

std::string EncodeBody(const Checkpoint& c) {
  std::string out;
  Put(out, c.lsn);
  Put(out, c.config);
  Put<uint64_t>(out, c.pending.size());
  for (const PendingRecord& p : c.pending) {
    Put(out, p.tx);
    Put<uint8_t>(out, p.backup);
    Put<uint8_t>(out, p.primary_committed);
    PutBytes(out, Encode(p.request));
  }
  Put<uint64_t>(out, c.watermarks.size());
  for (const Watermark& w : c.watermarks) {
    Put(out, w.tx);
    Put(out, w.incarnation);
  }
  Put<uint64_t>(out, c.outcomes.size());
  for (const auto& [tx, committed] : c.outcomes) {
    Put(out, tx);
    Put<uint8_t>(out, committed ? 1 : 2);
  }
  Put<uint64_t>(out, c.regions.size());
  for (const RegionImage& r : c.regions) {
    Put(out, r.id);
    Put(out, r.size);
    Put<uint64_t>(out, r.live.size());
    for (const auto& [addr, slot] : r.live) {
      Put(out, addr.raw());
      Put(out, slot);
    }
    Put<uint64_t>(out, r.floors.size());
    for (const auto& [block, floor] : r.floors) {
      Put(out, block);
      Put(out, floor);
    }
    Put<uint64_t>(out, r.classes.size());
    for (const auto& [block, slot_bytes] : r.classes) {
      Put(out, block);
      Put(out, slot_bytes);
    }
    Put<uint64_t>(out, r.pages.size());
    for (const auto& [index, bytes] : r.pages) {
      Put(out, index);
      out.append(bytes);
    }
  }
  return out;
}

absl::StatusOr<Checkpoint> DecodeBody(absl::string_view body, const std::string& path) {
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": malformed ", what));
  };
  Reader rd(body);
  Checkpoint c;
  uint64_t n = 0;
  if (!rd.Get(&c.lsn) || !rd.Get(&c.config) || !rd.Get(&n)) return bad("header");
  for (uint64_t i = 0; i < n; ++i) {
    PendingRecord p;
    uint8_t backup, committed;
    std::string req;
    if (!rd.Get(&p.tx) || !rd.Get(&backup) || !rd.Get(&committed) || !rd.GetBytes(&req)) return bad("pending record");
    absl::StatusOr<LockRequest> r = DecodeLockRequest(req);
    if (!r.ok()) return bad("pending request");
    p.backup = backup != 0;
    p.primary_committed = committed != 0;
    p.request = std::move(*r);
    c.pending.push_back(std::move(p));
  }
  if (!rd.Get(&n)) return bad("watermark list");
  for (uint64_t i = 0; i < n; ++i) {
    Watermark w;
    if (!rd.Get(&w.tx) || !rd.Get(&w.incarnation) || w.tx == 0) return bad("watermark list");
    c.watermarks.push_back(w);
  }
  if (!rd.Get(&n)) return bad("outcome list");
  for (uint64_t i = 0; i < n; ++i) {
    TxId tx = 0;
    uint8_t o = 0;
    if (!rd.Get(&tx) || !rd.Get(&o)) return bad("outcome list");
    if (o != 1 && o != 2) {
      return bad(absl::StrCat("outcome of transaction ", tx, " (", int{o}, ")"));
    }
    c.outcomes.push_back({tx, o == 1});
  }
  if (!rd.Get(&n)) return bad("region count");
  for (uint64_t i = 0; i < n; ++i) {
    RegionImage r;
    uint64_t live = 0, pages = 0;
    if (!rd.Get(&r.id) || !rd.Get(&r.size) || !rd.Get(&live)) return bad("region");
    for (uint64_t j = 0; j < live; ++j) {
      uint64_t raw;
      uint32_t slot;
      if (!rd.Get(&raw) || !rd.Get(&slot)) return bad("live object list");
      r.live.push_back({GlobalAddress::FromRaw(raw), slot});
    }
    uint64_t floors = 0;
    if (!rd.Get(&floors)) return bad("block floor count");
    for (uint64_t j = 0; j < floors; ++j) {
      uint32_t block;
      uint64_t floor;
      if (!rd.Get(&block) || !rd.Get(&floor)) return bad("block floor list");
      r.floors.push_back({block, floor});
    }
    uint64_t classes = 0;
    if (!rd.Get(&classes)) return bad("block class count");
    for (uint64_t j = 0; j < classes; ++j) {
      uint32_t block, slot_bytes;
      if (!rd.Get(&block) || !rd.Get(&slot_bytes)) return bad("block class list");
      r.classes.push_back({block, slot_bytes});
    }
    if (!rd.Get(&pages)) return bad("page count");
    for (uint64_t j = 0; j < pages; ++j) {
      uint32_t index;
      std::string bytes;
      if (!rd.Get(&index) || !rd.GetRaw(&bytes, kCheckpointPage)) return bad("page");
      if ((uint64_t{index} + 1) * kCheckpointPage > r.size) return bad("page index");
      r.pages.push_back({index, std::move(bytes)});
    }
    c.regions.push_back(std::move(r));
  }
  if (!rd.done()) return bad("trailing bytes");
  return c;
}

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("checkpoint ", path, ": write: ", strerror(errno)));
    bytes.remove_prefix(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& c, bool sync) {
  const std::string body = EncodeBody(c);
  std::string trailer;
  Put(trailer, Checksum(body));
  trailer.append(kEnd, kMagicBytes);
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("checkpoint ", tmp, ": open: ", strerror(errno)));
  absl::Status s = WriteAll(fd, absl::string_view(kMagic, kMagicBytes), tmp);
  if (s.ok()) s = WriteAll(fd, body, tmp);
  if (s.ok()) s = WriteAll(fd, trailer, tmp);
  if (s.ok() && sync && fdatasync(fd) != 0) {
    s = absl::InternalError(absl::StrCat("checkpoint ", tmp, ": fdatasync: ", strerror(errno)));
  }
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = absl::InternalError(absl::StrCat("checkpoint ", path, ": rename: ", strerror(errno)));
  }
  if (s.ok() && sync) s = SyncParentDirectory(path, "checkpoint");
  return s;
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("checkpoint ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  if (data.size() >= 3 * kMagicBytes && data.compare(0, kFormatAt, kMagic, kFormatAt) == 0 &&
      data[kFormatAt] != kMagic[kFormatAt]) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, ": format ", data.substr(0, kMagicBytes), " of an older farmd (",
        data[kFormatAt] == '5'   ? "truncation watermarks without coordinator incarnations"
        : data[kFormatAt] == '4' ? "committed ids without truncation watermarks"
                                 : "objects without start bits",
        "); this one reads ", absl::string_view(kMagic, kMagicBytes), " only"));
  }
  if (data.size() < 3 * kMagicBytes || data.compare(0, kMagicBytes, kMagic, kMagicBytes) != 0) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": not a checkpoint (", data.size(), " bytes, bad magic)"));
  }
  if (data.compare(data.size() - kMagicBytes, kMagicBytes, kEnd, kMagicBytes) != 0) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": incomplete (no end marker after ", data.size(),
                                            " bytes)"));
  }
  const absl::string_view body(data.data() + kMagicBytes, data.size() - 3 * kMagicBytes);
  uint64_t sum;
  std::memcpy(&sum, data.data() + data.size() - 2 * kMagicBytes, 8);
  if (Checksum(body) != sum) return absl::DataLossError(absl::StrCat("checkpoint ", path, ": checksum mismatch"));
  return DecodeBody(body, path);
}

}  // namespace dctk::farm::tx
