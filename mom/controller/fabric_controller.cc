#include "mom/controller/fabric_controller.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "mom/controller/switch_config.h"

namespace dctk::mom {

FabricController::FabricController(Fabric fabric, absl::Duration connect_timeout,
                                   int link_holddown_checks)
    : fabric_(std::move(fabric)),
      connect_timeout_(connect_timeout),
      link_holddown_checks_(link_holddown_checks) {}

SwitchClient* FabricController::Client(int node) {
  std::unique_ptr<SwitchClient>& client = clients_[node];
  if (client == nullptr) {
    absl::StatusOr<std::unique_ptr<SwitchClient>> c =
        SwitchClient::Connect(fabric_.control.at(node), connect_timeout_);
    if (!c.ok()) return nullptr;
    client = *std::move(c);
  }
  return client.get();
}

absl::StatusOr<bool> FabricController::Reconcile() {
  std::set<int> failed;
  std::set<int> links_down;
  for (const auto& [node, address] : fabric_.control) {
    SwitchClient* client = Client(node);
    absl::StatusOr<SwitchStats> stats =
        client == nullptr ? absl::UnavailableError("no connection") : client->Stats();
    if (!stats.ok()) {
      failed.insert(node);
      clients_.erase(node);  // reconnect from scratch once it is back
      continue;
    }
    const std::vector<Port>& ports = fabric_.topology.ports(node);
    for (const PortStatus& p : stats->ports()) {
      if (!p.link_up() && p.port() < ports.size()) links_down.insert(ports[p.port()].link);
    }
  }
  // A link down before stays down until it was reported up long enough.
  std::map<int, int> up_checks;
  for (int link : links_down_) {
    if (links_down.count(link)) continue;
    auto it = up_checks_.find(link);
    const int checks = (it == up_checks_.end() ? 0 : it->second) + 1;
    if (checks < link_holddown_checks_) {
      links_down.insert(link);
      up_checks[link] = checks;
    }
  }
  up_checks_ = std::move(up_checks);
  if (configured_ && failed == failed_ && links_down == links_down_) return false;
  failed_ = std::move(failed);
  links_down_ = std::move(links_down);
  if (absl::Status s = Push(); !s.ok()) {
    configured_ = false;  // try again on the next call
    return s;
  }
  configured_ = true;
  return true;
}

absl::Status FabricController::Push() {
  Topology working = fabric_.topology;
  RootPolicy policy;
  for (int node : failed_) {
    working.FailNode(node);
    policy.blacklist.insert(node);
  }
  // A root that lost a link it needs is no longer at the common distance
  // from every receiver: ComputeRoutes passes it over.
  for (int link : links_down_) working.FailLink(link);
  std::vector<SwitchConfig> configs;
  if (!fabric_.host_ips.empty()) {
    configs = UnicastConfigs(working, [this](int host) { return fabric_.host_ips.at(host); });
  }
  std::vector<GroupRoutes> routes;
  for (const GroupSpec& spec : fabric_.groups) {
    absl::StatusOr<GroupRoutes> r = ComputeRoutes(working, spec, policy);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("group ", spec.group_id, ": ",
                                                          r.status().message()));
    }
    if (absl::Status s = VerifyRoutes(working, *r); !s.ok()) return s;
    for (SwitchConfig& c : SwitchConfigs(working, *r)) configs.push_back(std::move(c));
    routes.push_back(*std::move(r));
  }
  std::map<std::string, SwitchClient*> live;
  for (const auto& [node, address] : fabric_.control) {
    if (failed_.count(node)) continue;
    SwitchClient* client = Client(node);
    if (client == nullptr) return absl::UnavailableError(absl::StrCat("switch ", fabric_.topology.node(node).name, " went away"));
    live[fabric_.topology.node(node).name] = client;
  }
  if (absl::Status s = PushConfigs(live, configs); !s.ok()) return s;
  routes_ = std::move(routes);
  return absl::OkStatus();
}

std::string FabricController::Describe() const {
  std::vector<std::string> failed;
  for (int node : failed_) failed.push_back(fabric_.topology.node(node).name);
  std::string out = absl::StrCat("failed: ", failed.empty() ? "none" : absl::StrJoin(failed, ","));
  if (!links_down_.empty()) {
    std::vector<std::string> links;
    for (int l : links_down_) {
      const Link& link = fabric_.topology.links()[l];
      links.push_back(absl::StrCat(fabric_.topology.node(link.a).name, "-",
                                   fabric_.topology.node(link.b).name));
    }
    absl::StrAppend(&out, "; links down: ", absl::StrJoin(links, ","));
  }
  for (const GroupRoutes& r : routes_) {
    std::vector<std::string> roots;
    for (const Channel& c : r.channels) roots.push_back(fabric_.topology.node(c.source).name);
    absl::StrAppend(&out, "; group ", r.spec.group_id, " (", DesignName(r.spec.design),
                    ") roots: ", absl::StrJoin(roots, ","));
  }
  return out;
}

}  // namespace dctk::mom
