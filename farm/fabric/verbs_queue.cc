// VerbsFabric::Queue: posting one-sided operations and polling completions.
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "farm/fabric/internal/tcp_exchange.h"
#include "farm/fabric/internal/verbs_wire.h"
#include "farm/fabric/verbs_fabric.h"

namespace dctk::farm::fabric {

using internal::CmReply;
using internal::CmRequest;
using internal::CmResult;
using internal::CmType;

VerbsFabric::Queue::Queue(VerbsFabric* fabric, ibv_cq* cq)
    : fabric_(fabric), cq_(cq), pending_(fabric->options_.queue_depth) {}

VerbsFabric::Queue::~Queue() {
  for (auto& [machine, c] : connections_) {
    if (c.qp != nullptr) ibv_destroy_qp(c.qp);
  }
  ibv_destroy_cq(cq_);
}

absl::StatusOr<ibv_qp*> VerbsFabric::Queue::ConnectionTo(MachineId machine) {
  Connection& c = connections_[machine];
  if (c.qp != nullptr && !c.broken) return c.qp;
  if (c.qp != nullptr) {
    ibv_destroy_qp(c.qp);
    c = Connection{};
  }
  absl::StatusOr<std::string> endpoint = fabric_->EndpointOf(machine);
  if (!endpoint.ok()) return endpoint.status();
  CmRequest req;
  req.type = CmType::kConnectQp;
  req.machine = fabric_->machine_id();
  absl::StatusOr<ibv_qp*> qp = fabric_->CreateQp(cq_, &req.qp);
  if (!qp.ok()) return qp.status();
  CmReply reply;
  absl::Status s = internal::TcpExchange(*endpoint, &req, sizeof(req), &reply, sizeof(reply));
  if (s.ok() && reply.result != CmResult::kOk) {
    s = absl::UnavailableError(absl::StrCat("verbs fabric: machine ", machine, " refused a queue pair"));
  }
  if (s.ok()) s = fabric_->ConnectQp(*qp, req.qp.psn, reply.qp);
  if (!s.ok()) {
    ibv_destroy_qp(*qp);
    return s;
  }
  c.qp = *qp;
  return c.qp;
}

absl::StatusOr<VerbsFabric::Queue::RemoteMr> VerbsFabric::Queue::Describe(MachineId machine,
                                                                          RegionKey key) {
  const uint64_t cache_key = (uint64_t{machine} << 32) | key;
  if (auto it = mr_cache_.find(cache_key); it != mr_cache_.end()) return it->second;
  absl::StatusOr<std::string> endpoint = fabric_->EndpointOf(machine);
  if (!endpoint.ok()) return endpoint.status();
  CmRequest req;
  req.type = CmType::kDescribeRegion;
  req.machine = fabric_->machine_id();
  req.key = key;
  CmReply reply;
  absl::Status s = internal::TcpExchange(*endpoint, &req, sizeof(req), &reply, sizeof(reply));
  if (!s.ok()) return s;
  if (reply.result != CmResult::kOk) {
    return absl::NotFoundError(absl::StrCat("verbs fabric: machine ", machine, " has no region ", key));
  }
  RemoteMr mr{reply.addr, reply.size, reply.rkey};
  mr_cache_[cache_key] = mr;
  return mr;
}

CompletionCode VerbsFabric::Queue::Prepare(const RemoteAddress& ra, uint64_t length, ibv_qp** qp,
                                           RemoteMr* mr) {
  if (ra.machine >= fabric_->options_.max_machines) return CompletionCode::kUnknownMachine;
  absl::StatusOr<RemoteMr> described = Describe(ra.machine, ra.key);
  if (!described.ok()) {
    return absl::IsNotFound(described.status()) &&
                   described.status().message().find("not connected") != absl::string_view::npos
               ? CompletionCode::kUnknownMachine
           : absl::IsNotFound(described.status()) ? CompletionCode::kInvalidKey
                                                  : CompletionCode::kRemoteError;
  }
  *mr = *described;
  if (length > mr->size || ra.offset > mr->size - length) return CompletionCode::kOutOfBounds;
  absl::StatusOr<ibv_qp*> q = ConnectionTo(ra.machine);
  if (!q.ok()) return CompletionCode::kRemoteError;
  *qp = *q;
  return CompletionCode::kSuccess;
}

void VerbsFabric::Queue::CompleteLocally(OpType op, const RemoteAddress& ra, uint32_t length,
                                         uint64_t wr_id, CompletionCode code) {
  Completion c;
  c.wr_id = wr_id;
  c.op = op;
  c.code = code;
  c.length = length;
  c.remote = ra;
  local_done_.push_back(c);
}

absl::Status VerbsFabric::Queue::Post(OpType op, const RemoteAddress& ra, void* local,
                                      uint32_t length, uint64_t wr_id, uint64_t compare,
                                      uint64_t swap) {
  if (outstanding_ == pending_.size()) {
    return absl::ResourceExhaustedError("verbs fabric: send queue full; poll before posting");
  }
  ++stats_.posted;
  ibv_qp* qp = nullptr;
  RemoteMr mr;
  CompletionCode code = Prepare(ra, length, &qp, &mr);
  if (code == CompletionCode::kSuccess && op == OpType::kCompareAndSwap && (ra.offset & 7) != 0) {
    code = CompletionCode::kMisaligned;
  }
  uint32_t lkey = last_lkey_;
  const auto a = reinterpret_cast<uintptr_t>(local);
  if (code == CompletionCode::kSuccess && !(a >= last_begin_ && a + length <= last_end_)) {
    if (fabric_->FindLkey(local, length, &lkey)) {
      last_lkey_ = lkey;
      last_begin_ = a;
      last_end_ = a + length;
    } else {
      code = CompletionCode::kLocalProtection;
    }
  }
  if (code != CompletionCode::kSuccess) {
    CompleteLocally(op, ra, length, wr_id, code);
    return absl::OkStatus();
  }
  uint32_t slot = next_slot_;
  while (pending_[slot].in_use) slot = (slot + 1) % pending_.size();
  next_slot_ = (slot + 1) % pending_.size();
  Pending& p = pending_[slot];
  p.in_use = true;
  p.completion = Completion{wr_id, op, CompletionCode::kSuccess, length, ra};

  ibv_sge sge{};
  sge.addr = a;
  sge.length = length;
  sge.lkey = lkey;
  ibv_send_wr wr{};
  wr.wr_id = slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.send_flags = IBV_SEND_SIGNALED;
  switch (op) {
    case OpType::kRead:
    case OpType::kWrite:
      wr.opcode = op == OpType::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
      wr.wr.rdma.remote_addr = mr.addr + ra.offset;
      wr.wr.rdma.rkey = mr.rkey;
      break;
    case OpType::kCompareAndSwap:
      wr.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
      wr.wr.atomic.remote_addr = mr.addr + ra.offset;
      wr.wr.atomic.rkey = mr.rkey;
      wr.wr.atomic.compare_add = compare;
      wr.wr.atomic.swap = swap;
      break;
  }
  ibv_send_wr* bad = nullptr;
  if (int e = ibv_post_send(qp, &wr, &bad); e != 0) {
    p.in_use = false;
    return absl::UnavailableError(absl::StrCat("verbs fabric: ibv_post_send to machine ", ra.machine,
                                               ": ", strerror(e)));
  }
  ++outstanding_;
  return absl::OkStatus();
}

absl::Status VerbsFabric::Queue::PostRead(const RemoteAddress& from, void* local, uint32_t length,
                                          uint64_t wr_id) {
  return Post(OpType::kRead, from, local, length, wr_id, 0, 0);
}

absl::Status VerbsFabric::Queue::PostWrite(const RemoteAddress& to, const void* local,
                                           uint32_t length, uint64_t wr_id) {
  return Post(OpType::kWrite, to, const_cast<void*>(local), length, wr_id, 0, 0);
}

absl::Status VerbsFabric::Queue::PostCompareAndSwap(const RemoteAddress& at, uint64_t expected,
                                                    uint64_t desired, uint64_t* old_value,
                                                    uint64_t wr_id) {
  return Post(OpType::kCompareAndSwap, at, old_value, 8, wr_id, expected, desired);
}

int VerbsFabric::Queue::PollCompletions(absl::Span<Completion> out) {
  int n = 0;
  while (n < static_cast<int>(out.size()) && local_head_ < local_done_.size()) {
    out[n++] = local_done_[local_head_++];
  }
  if (local_head_ == local_done_.size()) {
    local_done_.clear();
    local_head_ = 0;
  }
  ibv_wc wcs[16];
  while (n < static_cast<int>(out.size())) {
    const int want = std::min<int>(16, static_cast<int>(out.size()) - n);
    const int got = ibv_poll_cq(cq_, want, wcs);
    if (got <= 0) break;
    for (int i = 0; i < got; ++i) {
      Pending& p = pending_[wcs[i].wr_id];
      Completion c = p.completion;
      p.in_use = false;
      --outstanding_;
      if (wcs[i].status != IBV_WC_SUCCESS) {
        // The QP is now in the error state: replace it on the next post, and
        // forget cached keys of that machine (one may have been deregistered).
        connections_[c.remote.machine].broken = true;
        c.code = wcs[i].status == IBV_WC_REM_ACCESS_ERR ? CompletionCode::kInvalidKey
                                                         : CompletionCode::kRemoteError;
        for (auto it = mr_cache_.begin(); it != mr_cache_.end();) {
          if ((it->first >> 32) == c.remote.machine) {
            mr_cache_.erase(it++);
          } else {
            ++it;
          }
        }
      }
      out[n++] = c;
    }
    if (got < want) break;
  }
  for (int i = 0; i < n; ++i) ++stats_.completed[static_cast<int>(out[i].code)];
  return n;
}

}  // namespace dctk::farm::fabric
