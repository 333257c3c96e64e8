#include "mom/controller/fabric_controller.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "mom/controller/switch_config.h"

namespace dctk::mom {

FabricController::FabricController(Fabric fabric, absl::Duration connect_timeout,
                                   LinkCheckOptions options)
    : fabric_(std::move(fabric)), connect_timeout_(connect_timeout), options_(options) {
  for (const auto& [node, address] : fabric_.control) {
    const std::vector<Port>& ports = fabric_.topology.ports(node);
    for (size_t p = 0; p < ports.size(); ++p) {
      const int peer = ports[p].neighbor;
      if (!fabric_.topology.is_host(peer)) {
        probe_ports_[node].push_back(static_cast<uint32_t>(p));
      } else if (auto ip = fabric_.host_ips.find(peer); ip != fabric_.host_ips.end()) {
        host_probes_[node].push_back({static_cast<uint32_t>(p), ip->second});
      }
    }
  }
}

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
  std::map<int, SwitchStats> answered;
  for (const auto& [node, address] : fabric_.control) {
    SwitchClient* client = Client(node);
    StatsRequest request;
    for (uint32_t p : probe_ports_[node]) request.add_probe_ports(p);
    for (const auto& [port, ip] : host_probes_[node]) {
      HostProbe* h = request.add_host_probes();
      h->set_port(port);
      h->set_ip(ip);
    }
    absl::StatusOr<SwitchStats> stats =
        client == nullptr ? absl::UnavailableError("no connection") : client->Stats(request);
    if (!stats.ok()) {
      failed.insert(node);
      clients_.erase(node);  // reconnect from scratch once it is back
      continue;
    }
    const std::vector<Port>& ports = fabric_.topology.ports(node);
    for (const PortStatus& p : stats->ports()) {
      if (!p.link_up() && p.port() < ports.size()) links_down.insert(ports[p.port()].link);
    }
    answered[node] = *std::move(stats);
  }
  // A link down before stays down until it was reported up long enough.
  std::map<int, int> up_checks;
  for (int link : links_down_) {
    if (links_down.count(link)) continue;
    auto it = up_checks_.find(link);
    const int checks = (it == up_checks_.end() ? 0 : it->second) + 1;
    if (checks < options_.holddown_checks) {
      links_down.insert(link);
      up_checks[link] = checks;
    }
  }
  up_checks_ = std::move(up_checks);
  const bool dropping_changed = CheckProbes(answered);
  if (configured_ && !dropping_changed && failed == failed_ && links_down == links_down_) {
    return false;
  }
  failed_ = std::move(failed);
  links_down_ = std::move(links_down);
  if (absl::Status s = Push(); !s.ok()) {
    configured_ = false;  // try again on the next call
    return s;
  }
  configured_ = true;
  return true;
}

bool FabricController::ProbesCrossed(const std::map<int, SwitchStats>& stats, int link, int from,
                                     int to) {
  // A host answers probes; the switch that sent them counts the answers.
  const bool host = fabric_.topology.is_host(to);
  const auto f = stats.find(from), t = stats.find(host ? from : to);
  const int pf = fabric_.topology.PortTo(from, to);
  const int pt = host ? pf : fabric_.topology.PortTo(to, from);
  if (f == stats.end() || t == stats.end() || pf >= f->second.ports_size() ||
      pt >= t->second.ports_size()) {
    silent_checks_.erase({link, from});
    return false;
  }
  const auto sent_before = probe_counts_.find({from, pf});
  const auto received_before = probe_counts_.find({t->first, pt});
  const uint64_t sent_now = f->second.ports(pf).probes_sent();
  const uint64_t received_now = t->second.ports(pt).probes_received();
  if (sent_before == probe_counts_.end() || received_before == probe_counts_.end() ||
      sent_now < sent_before->second.sent || received_now < received_before->second.received) {
    return false;  // no baseline yet: the first check, or a switch restarted
  }
  const ProbeCounts delta{sent_now - sent_before->second.sent,
                          received_now - received_before->second.received};
  std::deque<ProbeCounts>& window = loss_windows_[{link, from}];
  window.push_back(delta);
  if (static_cast<int>(window.size()) > options_.probe_loss_window) window.pop_front();
  const bool sent = delta.sent > 0;
  const bool received = delta.received > 0;
  int& silent = silent_checks_[{link, from}];
  if (received) {
    silent = 0;
  } else if (sent) {
    ++silent;
  }
  return received;
}

bool FabricController::CheckProbes(const std::map<int, SwitchStats>& stats) {
  const std::set<int> before = links_dropping_, hosts_before = host_links_dropping_;
  const Topology& t = fabric_.topology;
  for (int l = 0; l < static_cast<int>(t.links().size()); ++l) {
    const Link& link = t.links()[l];
    const bool to_host = t.is_host(link.a) || t.is_host(link.b);
    // The ends whose probes cross the link: both switches, or the switch
    // facing a host whose address the fabric gives.
    std::vector<std::pair<int, int>> directions;
    if (!to_host) {
      directions = {{link.a, link.b}, {link.b, link.a}};
    } else if (!fabric_.host_ips.empty()) {
      directions = {t.is_host(link.a) ? std::pair{link.b, link.a} : std::pair{link.a, link.b}};
    } else {
      continue;
    }
    bool crossed_all = true;
    for (const auto& [from, to] : directions) {
      if (!ProbesCrossed(stats, l, from, to)) crossed_all = false;
    }
    std::set<int>& dropping = to_host ? host_links_dropping_ : links_dropping_;
    if (dropping.count(l)) {
      int& crossed = crossed_checks_[l];
      crossed = crossed_all ? crossed + 1 : 0;
      if (!Recovered(l, directions, crossed)) continue;
      dropping.erase(l);
      links_lossy_.erase(l);
      crossed_checks_.erase(l);
    } else {
      bool silent = false, lossy = false;
      for (const auto& [from, to] : directions) {
        silent = silent || silent_checks_[{l, from}] >= options_.probe_misses;
        lossy = lossy || Lossy(l, from);
      }
      if (!silent && !lossy) continue;
      dropping.insert(l);
      if (lossy && !silent) links_lossy_.insert(l);
      crossed_checks_[l] = 0;
    }
    // Judged afresh from here: a failed link on what it loses while failed,
    // a link used again on what it loses from now on.
    for (const auto& [from, to] : directions) loss_windows_.erase({l, from});
  }
  // This check's counts are the next one's baseline; a switch that did not
  // answer gets a new baseline once it is back.
  std::map<std::pair<int, int>, ProbeCounts> counts;
  for (const auto& [node, st] : stats) {
    for (const PortStatus& p : st.ports()) {
      counts[{node, static_cast<int>(p.port())}] = {p.probes_sent(), p.probes_received()};
    }
  }
  probe_counts_ = std::move(counts);
  return links_dropping_ != before || host_links_dropping_ != hosts_before;
}

double FabricController::WindowLoss(int link, int from) const {
  const auto it = loss_windows_.find({link, from});
  if (it == loss_windows_.end() ||
      static_cast<int>(it->second.size()) < options_.probe_loss_window) {
    return -1;
  }
  ProbeCounts t;
  for (const ProbeCounts& check : it->second) {
    t.sent += check.sent;
    t.received += check.received;
  }
  if (t.sent == 0) return -1;
  // Probes read on the other side of a check boundary make `received` one
  // more or less than what crossed.
  return t.received >= t.sent ? 0 : static_cast<double>(t.sent - t.received) / t.sent;
}

bool FabricController::Lossy(int link, int from) const {
  return options_.probe_loss > 0 && WindowLoss(link, from) >= options_.probe_loss;
}

bool FabricController::Recovered(int link, const std::vector<std::pair<int, int>>& directions,
                                 int crossed) const {
  if (crossed < options_.holddown_checks) return false;
  if (!links_lossy_.count(link)) return true;
  for (const auto& [from, to] : directions) {
    const double loss = WindowLoss(link, from);
    if (loss < 0 || loss >= options_.probe_loss / 2) return false;
  }
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
  for (int link : links_dropping_) working.FailLink(link);
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
  const std::pair<const char*, const std::set<int>*> kinds[] = {
      {"links down", &links_down_},
      {"links dropping", &links_dropping_},
      {"host links dropping", &host_links_dropping_}};
  for (const auto& [what, set] : kinds) {
    if (set->empty()) continue;
    std::vector<std::string> links;
    for (int l : *set) {
      const Link& link = fabric_.topology.links()[l];
      links.push_back(absl::StrCat(fabric_.topology.node(link.a).name, "-",
                                   fabric_.topology.node(link.b).name));
    }
    absl::StrAppend(&out, "; ", what, ": ", absl::StrJoin(links, ","));
  }
  return out + DescribeGroups(fabric_.topology, routes_);
}

std::string DescribeGroups(const Topology& topology, const std::vector<GroupRoutes>& routes) {
  std::string out;
  for (const GroupRoutes& r : routes) {
    std::vector<std::string> roots;
    for (const Channel& c : r.channels) roots.push_back(topology.node(c.source).name);
    absl::StrAppend(&out, "; group ", r.spec.group_id, " (", DesignName(r.spec.design),
                    ") roots: ", absl::StrJoin(roots, ","));
  }
  return out;
}

}  // namespace dctk::mom
