#include "mom/measure/controlled_fabric.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "mom/controller/fabric_controller.h"
#include "mom/measure/dataplane_run.h"
#include "mom/testbed/netns.h"

namespace dctk::mom {
namespace {

constexpr char kClusterGroup[] = "measured";

}  // namespace

absl::StatusOr<std::string> MeasureFabricText(const Testbed& bed, const LeafSpineSpec& shape,
                                              const MeasuredGroups& groups) {
  const Topology& t = bed.topology();
  FabricFile file;
  *file.mutable_leaf_spine() = shape;
  for (int sw : t.switches()) {
    SwitchEndpoint* s = file.add_switches();
    s->set_name(t.node(sw).name);
    s->set_control(bed.control_address(sw));
  }
  config::Cluster* cluster = file.mutable_cluster();
  if (groups.cluster.has_value()) {
    *cluster = *groups.cluster;
    std::set<int> named;
    for (config::Node& n : *cluster->mutable_nodes()) {
      absl::StatusOr<int> h = t.FindNode(n.name());
      if (!h.ok() || !t.is_host(*h)) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster node '", n.name(), "' is not a host of the topology"));
      }
      named.insert(*h);
      const size_t colon = n.address().rfind(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster node '", n.name(), "' address '", n.address(), "' has no port"));
      }
      n.set_address(absl::StrCat(Ipv4Text(bed.ip(*h)), n.address().substr(colon)));
    }
    for (int h : t.hosts()) {
      if (named.count(h)) continue;
      HostAddress* a = file.add_hosts();
      a->set_name(t.node(h).name);
      a->set_ip(Ipv4Text(bed.ip(h)));
    }
  } else {
    for (int h : t.hosts()) {
      config::Node* n = cluster->add_nodes();
      n->set_name(t.node(h).name);
      n->set_address(absl::StrCat(Ipv4Text(bed.ip(h)), ":", kMeasurePort));
    }
    config::MulticastGroup* m = cluster->add_multicast_groups();
    m->set_name(kClusterGroup);
    // Only checked as a cluster address: the switches route the controller's
    // 239.G.G.C channel addresses.
    m->set_address(absl::StrCat("239.0.0.1:", kMeasurePort));
    for (int h : groups.senders) m->add_senders(t.node(h).name);
    for (int h : groups.receivers) m->add_members(t.node(h).name);
  }
  for (uint32_t id : groups.group_ids) {
    MomGroupSpec* g = file.add_groups();
    g->set_group_id(id);
    g->set_design(std::string(DesignName(groups.design)));
    g->set_cluster_group(groups.cluster.has_value() ? groups.cluster_group : kClusterGroup);
  }
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(file, &text)) {
    return absl::InternalError("cannot print the fabric file");
  }
  return text;
}

absl::Status UseClusterGroup(const Topology& topology, const config::ClusterConfig& cluster,
                             const std::string& name, MeasuredGroups* groups) {
  const config::ClusterConfig::Multicast* m = cluster.FindMulticastGroup(name);
  if (m == nullptr) {
    return absl::NotFoundError(absl::StrCat("the cluster has no multicast group '", name, "'"));
  }
  auto hosts = [&](const std::vector<std::string>& names, std::vector<int>* out) {
    out->clear();
    for (const std::string& n : names) {
      absl::StatusOr<int> h = topology.FindNode(n);
      if (!h.ok() || !topology.is_host(*h)) {
        return absl::InvalidArgumentError(absl::StrCat("multicast group '", name, "': node '", n,
                                                       "' is not a host of the topology"));
      }
      out->push_back(*h);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = hosts(m->senders, &groups->senders); !s.ok()) return s;
  if (absl::Status s = hosts(m->members, &groups->receivers); !s.ok()) return s;
  groups->cluster = cluster.proto();
  groups->cluster_group = name;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ControlledFabric>> ControlledFabric::Start(
    const std::string& controller_binary, const std::string& fabric_path,
    const std::vector<std::string>& flags) {
  absl::StatusOr<Fabric> fabric = LoadFabric(fabric_path);
  if (!fabric.ok()) return fabric.status();
  std::vector<GroupRoutes> routes;
  for (const GroupSpec& spec : fabric->groups) {
    absl::StatusOr<GroupRoutes> r = ComputeRoutes(fabric->topology, spec);
    if (!r.ok()) return r.status();
    routes.push_back(*std::move(r));
  }
  const std::string expected =
      "mom_controller configured: failed: none" + DescribeGroups(fabric->topology, routes);
  std::unique_ptr<ControlledFabric> f(new ControlledFabric(*std::move(fabric), std::move(routes)));
  if (absl::Status s = f->controller_.Start(controller_binary, fabric_path, flags); !s.ok()) {
    return s;
  }
  const std::string line = f->controller_.NextLine();
  if (line.empty()) {
    return absl::DeadlineExceededError(absl::StrCat("mom_controller configured nothing from ",
                                                    fabric_path,
                                                    " within 30 s (its stderr says why)"));
  }
  if (line != expected) {
    return absl::FailedPreconditionError(
        absl::StrCat("mom_controller did not configure the healthy fabric of ", fabric_path,
                     ": it said '", line, "', expected '", expected, "'"));
  }
  return f;
}

std::vector<std::string> ControlledFabric::Reconfigurations() {
  std::vector<std::string> lines;
  for (std::string line = controller_.NextLine(0); !line.empty(); line = controller_.NextLine(0)) {
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace dctk::mom
