// The measurement behind the net fabric's design choice (farm/README.md):
// one-sided fi_read latency through libfabric's tcp provider (tcp;ofi_rxm,
// RDM endpoints, two endpoints in one process over 127.0.0.1), with the
// target's progress driven by a thread that either spins on fi_cq_read
// ("spin") or blocks in fi_cq_sread ("wait"). The provider's data progress
// is FI_PROGRESS_MANUAL: with no target thread polling, fi_read never
// completes, so libfabric needs a target progress thread just as our own
// net fabric has.
//
//   bazel run -c opt //farm/bench:libfabric_rma_probe -- wait
//   bazel run -c opt //farm/bench:libfabric_rma_probe -- spin
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

void Check(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "%s: %s\n", what, fi_strerror(-rc));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "wait";
  if (mode != "wait" && mode != "spin") {
    std::fprintf(stderr, "usage: libfabric_rma_probe [wait|spin]\n");
    return 2;
  }
  fi_info* hints = fi_allocinfo();
  hints->caps = FI_RMA;
  hints->ep_attr->type = FI_EP_RDM;
  hints->fabric_attr->prov_name = strdup("tcp");
  hints->domain_attr->mr_mode =
      FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
  fi_info* info = nullptr;
  Check(fi_getinfo(FI_VERSION(1, 17), "127.0.0.1", nullptr, 0, hints, &info), "fi_getinfo");
  std::printf("provider %s, data progress %s, target thread: %s\n", info->fabric_attr->prov_name,
              info->domain_attr->data_progress == FI_PROGRESS_MANUAL ? "manual" : "auto",
              mode.c_str());
  fid_fabric* fabric;
  fid_domain* domain;
  Check(fi_fabric(info->fabric_attr, &fabric, nullptr), "fi_fabric");
  Check(fi_domain(fabric, info, &domain, nullptr), "fi_domain");
  fi_av_attr av_attr{};
  av_attr.type = FI_AV_TABLE;
  fi_cq_attr cq_attr{};
  cq_attr.format = FI_CQ_FORMAT_CONTEXT;
  cq_attr.size = 128;
  if (mode == "wait") cq_attr.wait_obj = FI_WAIT_UNSPEC;
  fid_ep* ep[2];
  fid_cq* cq[2];
  fid_av* av[2];
  char name[2][64];
  for (int i = 0; i < 2; ++i) {
    size_t len = sizeof(name[i]);
    Check(fi_endpoint(domain, info, &ep[i], nullptr), "fi_endpoint");
    Check(fi_cq_open(domain, &cq_attr, &cq[i], nullptr), "fi_cq_open");
    Check(fi_av_open(domain, &av_attr, &av[i], nullptr), "fi_av_open");
    Check(fi_ep_bind(ep[i], &cq[i]->fid, FI_TRANSMIT | FI_RECV), "fi_ep_bind cq");
    Check(fi_ep_bind(ep[i], &av[i]->fid, 0), "fi_ep_bind av");
    Check(fi_enable(ep[i]), "fi_enable");
    Check(fi_getname(&ep[i]->fid, name[i], &len), "fi_getname");
  }
  fi_addr_t target, initiator;
  if (fi_av_insert(av[0], name[1], 1, &target, 0, nullptr) != 1 ||
      fi_av_insert(av[1], name[0], 1, &initiator, 0, nullptr) != 1) {
    std::fprintf(stderr, "fi_av_insert failed\n");
    return 1;
  }
  std::vector<char> remote(1 << 20, 7), local(1 << 20);
  fid_mr *remote_mr, *local_mr;
  Check(fi_mr_reg(domain, remote.data(), remote.size(), FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 1, 0,
                  &remote_mr, nullptr), "fi_mr_reg remote");
  Check(fi_mr_reg(domain, local.data(), local.size(), FI_READ | FI_WRITE, 0, 2, 0, &local_mr, nullptr),
        "fi_mr_reg local");
  if (info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
    Check(fi_mr_bind(remote_mr, &ep[1]->fid, 0), "fi_mr_bind");
    Check(fi_mr_enable(remote_mr), "fi_mr_enable");
    Check(fi_mr_bind(local_mr, &ep[0]->fid, 0), "fi_mr_bind");
    Check(fi_mr_enable(local_mr), "fi_mr_enable");
  }
  const uint64_t key = fi_mr_key(remote_mr);
  const uint64_t remote_addr =
      (info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) ? reinterpret_cast<uint64_t>(remote.data()) : 0;

  std::atomic<bool> stop{false};
  std::thread progress([&] {
    fi_cq_entry e;
    while (!stop.load()) {
      if (mode == "wait") {
        fi_cq_sread(cq[1], &e, 1, nullptr, 100);
      } else {
        fi_cq_read(cq[1], &e, 1);
      }
    }
  });
  for (size_t size : {size_t{64}, size_t{4096}}) {
    int ops = 0;
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(2)) {
      ssize_t rc;
      while ((rc = fi_read(ep[0], local.data(), size, fi_mr_desc(local_mr), target, remote_addr, key,
                           nullptr)) == -FI_EAGAIN) {
        fi_cq_entry e;
        fi_cq_read(cq[0], &e, 0);
      }
      Check(static_cast<int>(rc), "fi_read");
      fi_cq_entry e;
      while ((rc = fi_cq_read(cq[0], &e, 1)) == -FI_EAGAIN) {
      }
      if (rc != 1) Check(static_cast<int>(rc), "fi_cq_read");
      ++ops;
    }
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / ops;
    std::printf("fi_read %4zu B: %.1f us/op over %d ops (data %s)\n", size, us, ops,
                local[size - 1] == 7 ? "ok" : "WRONG");
  }
  stop = true;
  progress.join();
  return 0;
}
