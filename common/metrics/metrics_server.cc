#include "common/metrics/metrics_server.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dctk::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::shared_ptr<Registry> registry, const std::string& address) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // One worker thread: scrapes are rare and must not compete with the datapath.
    exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
  } catch (const std::exception& e) {  // civetweb throws when it cannot listen.
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on '", address, "': ", e.what()));
  }
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(registry), std::move(exposer)));
}

MetricsServer::MetricsServer(std::shared_ptr<Registry> registry,
                             std::unique_ptr<prometheus::Exposer> exposer)
    : registry_(std::move(registry)), exposer_(std::move(exposer)) {}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace dctk::metrics
