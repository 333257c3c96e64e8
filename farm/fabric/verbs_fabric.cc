#include "farm/fabric/verbs_fabric.h"

#include <infiniband/verbs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "farm/fabric/internal/region_memory.h"
#include "farm/fabric/internal/tcp_exchange.h"
#include "farm/fabric/internal/verbs_wire.h"
#include "glog/logging.h"

namespace dctk::farm::fabric {

using internal::CmReply;
using internal::CmRequest;
using internal::CmResult;
using internal::CmType;
using internal::QpInfo;

int VerbsDeviceCount() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) return 0;
  ibv_free_device_list(list);
  return n;
}

namespace {
absl::Status VerbsError(absl::string_view what, int err) {
  return absl::UnavailableError(absl::StrCat("verbs fabric: ", what, ": ", strerror(err)));
}
constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                        IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
}  // namespace

VerbsFabric::VerbsFabric(const Options& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<VerbsFabric>> VerbsFabric::Create(const Options& options) {
  if (options.machine_id >= options.max_machines) {
    return absl::InvalidArgumentError(absl::StrCat("verbs fabric: machine_id ", options.machine_id,
                                                   " >= max_machines ", options.max_machines));
  }
  std::unique_ptr<VerbsFabric> f(new VerbsFabric(options));
  absl::Status s = f->Open();
  if (!s.ok()) return s;
  return f;
}

absl::Status VerbsFabric::Open() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr || n == 0) {
    if (list != nullptr) ibv_free_device_list(list);
    return absl::FailedPreconditionError("verbs fabric: no RDMA device (ibv_get_device_list is empty)");
  }
  ibv_device* dev = nullptr;
  for (int i = 0; i < n; ++i) {
    if (options_.device.empty() || options_.device == ibv_get_device_name(list[i])) {
      dev = list[i];
      break;
    }
  }
  if (dev == nullptr) {
    ibv_free_device_list(list);
    return absl::NotFoundError(absl::StrCat("verbs fabric: no RDMA device named '", options_.device, "'"));
  }
  ctx_ = ibv_open_device(dev);
  ibv_free_device_list(list);
  if (ctx_ == nullptr) return VerbsError("ibv_open_device", errno);
  pd_ = ibv_alloc_pd(ctx_);
  if (pd_ == nullptr) return VerbsError("ibv_alloc_pd", errno);
  ibv_port_attr port{};
  if (int e = ibv_query_port(ctx_, options_.port, &port); e != 0) {
    return VerbsError(absl::StrCat("ibv_query_port ", options_.port), e);
  }
  lid_ = port.lid;
  mtu_ = port.active_mtu;
  ibv_gid gid{};
  if (int e = ibv_query_gid(ctx_, options_.port, options_.gid_index, &gid); e != 0) {
    return VerbsError(absl::StrCat("ibv_query_gid index ", options_.gid_index), e);
  }
  std::memcpy(gid_, gid.raw, sizeof(gid_));
  ibv_device_attr dattr{};
  if (int e = ibv_query_device(ctx_, &dattr); e != 0) return VerbsError("ibv_query_device", e);
  max_rd_atomic_ = std::max(1, std::min(16, dattr.max_qp_rd_atom));
  passive_cq_ = ibv_create_cq(ctx_, 16, nullptr, nullptr, 0);
  if (passive_cq_ == nullptr) return VerbsError("ibv_create_cq", errno);
  absl::StatusOr<int> fd = internal::TcpListen(options_.listen_host, &endpoint_);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return VerbsError("eventfd", errno);
  serve_thread_ = std::thread([this] { ServeLoop(); });
  return absl::OkStatus();
}

VerbsFabric::~VerbsFabric() {
  if (serve_thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    serve_thread_.join();
  }
  {
    absl::MutexLock l(&mu_);
    for (ibv_qp* qp : passive_qps_) ibv_destroy_qp(qp);
    for (auto& [key, r] : regions_) {
      ibv_dereg_mr(r.mr);
      munmap(r.base, r.size);
    }
    for (LocalMr& m : local_mrs_) {
      if (m.mr != nullptr) ibv_dereg_mr(m.mr);  // null: a region, deregistered above
    }
  }
  if (passive_cq_ != nullptr) ibv_destroy_cq(passive_cq_);
  if (pd_ != nullptr) ibv_dealloc_pd(pd_);
  if (ctx_ != nullptr) ibv_close_device(ctx_);
  for (int fd : {listen_fd_, wake_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status VerbsFabric::Connect(MachineId machine, absl::string_view endpoint) {
  if (machine >= options_.max_machines) {
    return absl::InvalidArgumentError(absl::StrCat("verbs fabric: machine ", machine, " >= max_machines"));
  }
  absl::MutexLock l(&mu_);
  endpoints_[machine] = std::string(endpoint);
  return absl::OkStatus();
}

absl::StatusOr<std::string> VerbsFabric::EndpointOf(MachineId machine) {
  if (machine == options_.machine_id) return endpoint_;
  absl::MutexLock l(&mu_);
  auto it = endpoints_.find(machine);
  if (it == endpoints_.end()) {
    return absl::NotFoundError(absl::StrCat("verbs fabric: not connected to machine ", machine));
  }
  return it->second;
}

absl::StatusOr<MemoryRegion> VerbsFabric::Register(uint64_t size) {
  if (size == 0) return absl::InvalidArgumentError("verbs fabric: Register of 0 bytes");
  absl::StatusOr<internal::RegionMemory> mem =
      internal::AllocateAnonymous(size, options_.huge_pages, internal::PageSystem::Real());
  if (!mem.ok()) return mem.status();
  void* base = mem->base;
  size = mem->size;
  // hugetlb/THP memory is physically contiguous per 2 MiB: the driver then
  // registers the MR with 2 MiB pages, so the NIC caches 512x fewer entries.
  // IBV_ACCESS_HUGETLB tells libibverbs the range is hugetlb (fork-safety
  // madvise works on whole huge pages).
  const int access = kAccess | (mem->pages == PageKind::kHugetlb ? IBV_ACCESS_HUGETLB : 0);
  ibv_mr* mr = ibv_reg_mr(pd_, base, size, access);
  if (mr == nullptr) {
    int e = errno;
    munmap(base, size);
    return VerbsError(absl::StrCat("ibv_reg_mr of ", size, " bytes"), e);
  }
  absl::MutexLock l(&mu_);
  const RegionKey key = next_key_++;
  regions_[key] = Region{key, base, size, mr};
  local_mrs_.push_back({reinterpret_cast<uintptr_t>(base), reinterpret_cast<uintptr_t>(base) + size,
                        mr->lkey, nullptr});
  return MemoryRegion{key, base, size, mem->pages};
}

absl::Status VerbsFabric::RegisterLocal(void* addr, size_t size) {
  ibv_mr* mr = ibv_reg_mr(pd_, addr, size, IBV_ACCESS_LOCAL_WRITE);
  if (mr == nullptr) return VerbsError(absl::StrCat("ibv_reg_mr (local) of ", size, " bytes"), errno);
  absl::MutexLock l(&mu_);
  local_mrs_.push_back({reinterpret_cast<uintptr_t>(addr), reinterpret_cast<uintptr_t>(addr) + size,
                        mr->lkey, mr});
  return absl::OkStatus();
}

absl::Status VerbsFabric::Deregister(RegionKey key) {
  absl::MutexLock l(&mu_);
  auto it = regions_.find(key);
  if (it == regions_.end()) {
    return absl::NotFoundError(absl::StrCat("verbs fabric: machine ", options_.machine_id,
                                            " has no registered region with key ", key));
  }
  const uintptr_t begin = reinterpret_cast<uintptr_t>(it->second.base);
  local_mrs_.erase(std::remove_if(local_mrs_.begin(), local_mrs_.end(),
                                  [&](const LocalMr& m) { return m.mr == nullptr && m.begin == begin; }),
                   local_mrs_.end());
  ibv_dereg_mr(it->second.mr);
  // The memory stays mapped (a Queue of this machine may still hold its
  // address); the NIC now rejects the rkey.
  regions_.erase(it);
  return absl::OkStatus();
}

bool VerbsFabric::FindLkey(const void* addr, size_t len, uint32_t* lkey) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  absl::MutexLock l(&mu_);
  for (const LocalMr& m : local_mrs_) {
    if (a >= m.begin && a + len <= m.end) {
      *lkey = m.lkey;
      return true;
    }
  }
  return false;
}

absl::StatusOr<ibv_qp*> VerbsFabric::CreateQp(ibv_cq* cq, QpInfo* self) {
  ibv_qp_init_attr init{};
  init.send_cq = cq;
  init.recv_cq = cq;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = options_.queue_depth;
  init.cap.max_recv_wr = 1;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  ibv_qp* qp = ibv_create_qp(pd_, &init);
  if (qp == nullptr) return VerbsError("ibv_create_qp", errno);
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.pkey_index = 0;
  attr.port_num = options_.port;
  attr.qp_access_flags = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
  if (int e = ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
      e != 0) {
    ibv_destroy_qp(qp);
    return VerbsError("ibv_modify_qp to INIT", e);
  }
  static thread_local std::mt19937 rng{std::random_device{}()};
  self->qpn = qp->qp_num;
  self->psn = rng() & 0xffffff;
  self->lid = lid_;
  std::memcpy(self->gid, gid_, sizeof(gid_));
  return qp;
}

absl::Status VerbsFabric::ConnectQp(ibv_qp* qp, uint32_t local_psn, const QpInfo& remote) {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = static_cast<ibv_mtu>(mtu_);
  attr.dest_qp_num = remote.qpn;
  attr.rq_psn = remote.psn;
  attr.max_dest_rd_atomic = max_rd_atomic_;
  attr.min_rnr_timer = 12;
  attr.ah_attr.dlid = remote.lid;
  attr.ah_attr.port_num = options_.port;
  static constexpr uint8_t kZero[16] = {};
  if (std::memcmp(remote.gid, kZero, 16) != 0) {  // RoCE / routed IB: needs a GRH
    attr.ah_attr.is_global = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid, 16);
    attr.ah_attr.grh.sgid_index = options_.gid_index;
    attr.ah_attr.grh.hop_limit = 1;
  }
  if (int e = ibv_modify_qp(qp, &attr,
                            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
      e != 0) {
    return VerbsError("ibv_modify_qp to RTR", e);
  }
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = 14;
  attr.retry_cnt = 7;
  attr.rnr_retry = 7;
  attr.sq_psn = local_psn;
  attr.max_rd_atomic = max_rd_atomic_;
  return ibv_modify_qp(qp, &attr,
                       IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                           IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) == 0
             ? absl::OkStatus()
             : VerbsError("ibv_modify_qp to RTS", errno);
}

void VerbsFabric::ServeLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "verbs fabric: poll";
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval tv{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      Serve(fd);
      close(fd);
    }
  }
}

void VerbsFabric::Serve(int fd) {
  CmRequest req;
  if (!internal::ReadFull(fd, &req, sizeof(req)).ok()) return;
  CmReply reply;
  if (req.type == CmType::kDescribeRegion) {
    absl::MutexLock l(&mu_);
    auto it = regions_.find(req.key);
    if (it == regions_.end()) {
      reply.result = CmResult::kNoSuchRegion;
    } else {
      reply.result = CmResult::kOk;
      reply.addr = reinterpret_cast<uint64_t>(it->second.base);
      reply.size = it->second.size;
      reply.rkey = it->second.mr->rkey;
    }
  } else if (req.type == CmType::kConnectQp) {
    absl::StatusOr<ibv_qp*> qp = CreateQp(passive_cq_, &reply.qp);
    absl::Status s = qp.ok() ? ConnectQp(*qp, reply.qp.psn, req.qp) : qp.status();
    if (s.ok()) {
      reply.result = CmResult::kOk;
      absl::MutexLock l(&mu_);
      passive_qps_.push_back(*qp);
    } else {
      LOG(WARNING) << "verbs fabric machine " << options_.machine_id
                   << ": queue pair for machine " << req.machine << " failed: " << s;
      if (qp.ok()) ibv_destroy_qp(*qp);
    }
  }
  (void)internal::WriteFull(fd, &reply, sizeof(reply));
}

absl::StatusOr<std::unique_ptr<VerbsFabric::Queue>> VerbsFabric::CreateQueue() {
  ibv_cq* cq = ibv_create_cq(ctx_, static_cast<int>(options_.queue_depth), nullptr, nullptr, 0);
  if (cq == nullptr) return VerbsError("ibv_create_cq", errno);
  return std::unique_ptr<Queue>(new Queue(this, cq));
}

}  // namespace dctk::farm::fabric
