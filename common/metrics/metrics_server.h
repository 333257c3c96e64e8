// MetricsServer: serves a Registry at http://<address>/metrics for Prometheus.
//
// A thin owner of prometheus-cpp's Exposer (civetweb): it keeps the registry
// alive while served and turns a failure to listen into a Status.
//
// Example:
//   absl::StatusOr<std::unique_ptr<MetricsServer>> s =
//       MetricsServer::Start(registry, "0.0.0.0:9464");
//   if (!s.ok()) return s.status();
//   LOG(INFO) << "metrics on port " << (*s)->port();
#ifndef DCTK_COMMON_METRICS_METRICS_SERVER_H_
#define DCTK_COMMON_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics/registry.h"
#include "prometheus/exposer.h"

namespace dctk::metrics {

class MetricsServer {
 public:
  // Listens on `address` ("ip:port"; port 0 picks a free one). Unavailable
  // if it cannot listen there.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(std::shared_ptr<Registry> registry,
                                                              const std::string& address);
  ~MetricsServer();

  // The port actually listened on.
  int port() const;

 private:
  MetricsServer(std::shared_ptr<Registry> registry, std::unique_ptr<prometheus::Exposer> exposer);

  std::shared_ptr<Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace dctk::metrics

#endif  // DCTK_COMMON_METRICS_METRICS_SERVER_H_
