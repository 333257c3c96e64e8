#include "bastion/policy/policy.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bastion/datapath/datapath.h"
#include "yaml-cpp/yaml.h"

namespace dctk::bastion {
namespace {

// A parse error at a node; turned into a Status at the top.
struct PolicyError {
  YAML::Mark mark;
  std::string reason;
};

[[noreturn]] void Fail(const YAML::Node& node, std::string reason) {
  throw PolicyError{node.Mark(), std::move(reason)};
}

void CheckKeys(const YAML::Node& node, absl::string_view what,
               const std::set<std::string>& allowed) {
  if (!node.IsMap()) Fail(node, absl::StrCat(what, " must be a mapping"));
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) Fail(kv.first, absl::StrCat(what, ": keys must be plain words"));
    const std::string& key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string known;
      for (const std::string& k : allowed) absl::StrAppend(&known, known.empty() ? "" : ", ", k);
      Fail(kv.first, absl::StrCat("unknown key '", key, "' in ", what, " (known: ", known, ")"));
    }
    if (!seen.insert(key).second) Fail(kv.first, absl::StrCat("duplicate key '", key, "'"));
  }
}

std::string Scalar(const YAML::Node& node, absl::string_view what) {
  if (!node.IsScalar()) Fail(node, absl::StrCat(what, " must be a single value"));
  return node.Scalar();
}

bool Bool(const YAML::Node& node, absl::string_view what) {
  std::string s = absl::AsciiStrToLower(Scalar(node, what));
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(node, absl::StrCat(what, " must be true or false, not '", s, "'"));
}

std::string Name(const YAML::Node& node, absl::string_view what) {
  std::string s = Scalar(node, what);
  if (s.empty()) Fail(node, absl::StrCat(what, " is empty"));
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      Fail(node, absl::StrCat(what, " '", s, "': use letters, digits, '-', '_', '.'"));
    }
  }
  return s;
}

std::vector<YAML::Node> Sequence(const YAML::Node& node, absl::string_view what) {
  if (!node.IsSequence()) Fail(node, absl::StrCat(what, " must be a list"));
  return std::vector<YAML::Node>(node.begin(), node.end());
}

uint32_t Address(const YAML::Node& node) {
  std::string s = Scalar(node, "address");
  std::vector<absl::string_view> parts = absl::StrSplit(s, '.');
  uint32_t ip = 0;
  for (absl::string_view part : parts) {
    uint32_t octet = 0;
    if (parts.size() != 4 || part.empty() || part.size() > 3 ||
        !absl::SimpleAtoi(part, &octet) || octet > 255) {
      Fail(node, absl::StrCat("'", s, "' is not an IPv4 address"));
    }
    ip = (ip << 8) | octet;
  }
  return ip;
}

std::vector<PortRange> Ports(const YAML::Node& node, absl::string_view what) {
  std::vector<PortRange> out;
  for (const YAML::Node& item : Sequence(node, what)) {
    absl::StatusOr<PortRange> range = ParsePortRange(Scalar(item, what));
    if (!range.ok()) Fail(item, std::string(range.status().message()));
    out.push_back(*range);
  }
  return out;
}

Selector ParseSelector(const YAML::Node& node) {
  CheckKeys(node, "select", {"names", "labels"});
  Selector sel;
  if (node["names"]) {
    for (const YAML::Node& n : Sequence(node["names"], "select.names")) {
      std::string name = Scalar(n, "container name");
      if (name.empty() || name == "*" || name.find('*') < name.size() - 1) {
        Fail(n, absl::StrCat("container name '", name,
                             "': '*' only as the last character after a prefix"));
      }
      sel.names.push_back(name);
    }
  }
  if (node["labels"]) {
    const YAML::Node labels = node["labels"];
    if (!labels.IsMap()) Fail(labels, "select.labels must be a mapping of label: value");
    for (const auto& kv : labels) {
      std::string key = Scalar(kv.first, "label name");
      if (!sel.labels.emplace(key, Scalar(kv.second, "label value")).second) {
        Fail(kv.first, absl::StrCat("duplicate label '", key, "'"));
      }
    }
  }
  if (sel.names.empty() && sel.labels.empty()) {
    Fail(node, "select needs names or labels (an empty selector would match everything)");
  }
  return sel;
}

Peer ParsePeer(const YAML::Node& node, bool inbound) {
  if (inbound) {
    CheckKeys(node, "accepts entry", {"host", "world", "ports", "except"});
  } else {
    CheckKeys(node, "depends_on entry", {"service", "host", "world", "group", "ports", "except"});
  }
  Peer peer;
  peer.line = node.Mark().line + 1;
  if (node["group"]) {
    peer.kind = Peer::Kind::kGroup;
    peer.name = Name(node["group"], "group");
    if (node["service"] || node["host"] || node["world"]) {
      Fail(node, "a depends_on entry names exactly one of service, host, world, group");
    }
    if (node["ports"] || node["except"]) {
      Fail(node["ports"] ? node["ports"] : node["except"],
           "a group dependency takes no ports (the group's own UDP port is the one)");
    }
    return peer;
  }
  int kinds = 0;
  if (node["service"]) {
    peer.kind = Peer::Kind::kService;
    peer.name = Name(node["service"], "service");
    ++kinds;
  }
  if (node["host"]) {
    peer.kind = Peer::Kind::kHost;
    peer.name = Name(node["host"], "host");
    ++kinds;
  }
  if (node["world"]) {
    if (!Bool(node["world"], "world")) Fail(node["world"], "world: false means nothing; drop it");
    peer.kind = Peer::Kind::kWorld;
    ++kinds;
  }
  if (kinds != 1) {
    Fail(node, inbound ? "an accepts entry names exactly one of host, world"
                       : "a depends_on entry names exactly one of service, host, world, group");
  }
  if (!node["ports"]) Fail(node, "missing 'ports' (say [any] to allow everything)");
  peer.ports = Ports(node["ports"], "ports");
  if (node["except"]) {
    peer.except = Ports(node["except"], "except");
    for (size_t i = 0; i < peer.except.size(); ++i) {
      const PortRange& e = peer.except[i];
      bool covered = false;
      for (const PortRange& p : peer.ports) covered |= p.proto == e.proto && e.proto != 0;
      if (!covered) {
        Fail(node["except"][i], absl::StrCat("except '", PortRangeToString(e),
                                             "' names no protocol listed in ports"));
      }
    }
  }
  return peer;
}

GroupDef ParseGroup(const YAML::Node& node) {
  CheckKeys(node, "group", {"name", "address", "port", "members", "sequenced"});
  GroupDef g;
  g.line = node.Mark().line + 1;
  if (!node["name"]) Fail(node, "group without a name");
  g.name = Name(node["name"], "group name");
  if (!node["address"]) Fail(node, absl::StrCat("group '", g.name, "' has no address"));
  g.address = Address(node["address"]);
  if (!IsMulticast(g.address)) {
    Fail(node["address"], absl::StrCat("group '", g.name, "': address ",
                                       Ipv4ToString(g.address),
                                       " is not multicast (224.0.0.0/4)"));
  }
  if (!node["port"]) Fail(node, absl::StrCat("group '", g.name, "' has no port"));
  uint32_t port = 0;
  if (!absl::SimpleAtoi(Scalar(node["port"], "port"), &port) || port == 0 || port > 65535) {
    Fail(node["port"], absl::StrCat("group '", g.name, "': port must be a UDP port 1-65535"));
  }
  g.port = static_cast<uint16_t>(port);
  if (!node["members"]) Fail(node, absl::StrCat("group '", g.name, "' has no members"));
  g.members = ParseSelector(node["members"]);
  if (node["sequenced"]) g.sequenced = Bool(node["sequenced"], "sequenced");
  return g;
}

Service ParseService(const YAML::Node& node) {
  CheckKeys(node, "service", {"name", "select", "depends_on", "accepts"});
  Service svc;
  svc.line = node.Mark().line + 1;
  if (!node["name"]) Fail(node, "service without a name");
  svc.name = Name(node["name"], "service name");
  if (!node["select"]) Fail(node, absl::StrCat("service '", svc.name, "' has no select"));
  svc.select = ParseSelector(node["select"]);
  if (node["depends_on"]) {
    for (const YAML::Node& p : Sequence(node["depends_on"], "depends_on")) {
      svc.depends_on.push_back(ParsePeer(p, /*inbound=*/false));
    }
  }
  if (node["accepts"]) {
    for (const YAML::Node& p : Sequence(node["accepts"], "accepts")) {
      svc.accepts.push_back(ParsePeer(p, /*inbound=*/true));
    }
  }
  return svc;
}

Policy ParseRoot(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) Fail(root, "empty policy");
  CheckKeys(root, "policy", {"version", "audit", "hosts", "groups", "services"});
  Policy policy;
  if (!root["version"]) Fail(root, "missing 'version: 1'");
  if (Scalar(root["version"], "version") != "1") {
    Fail(root["version"], "unsupported version (this bastion reads version 1)");
  }
  if (root["audit"]) policy.audit = Bool(root["audit"], "audit");
  std::set<std::string> hosts = {kGatewayHost};
  if (root["hosts"]) {
    for (const YAML::Node& h : Sequence(root["hosts"], "hosts")) {
      CheckKeys(h, "host", {"name", "addresses"});
      HostGroup group;
      group.line = h.Mark().line + 1;
      if (!h["name"]) Fail(h, "host without a name");
      group.name = Name(h["name"], "host name");
      if (!hosts.insert(group.name).second) {
        Fail(h["name"], absl::StrCat("host '", group.name, "' defined twice (or built in)"));
      }
      if (!h["addresses"]) Fail(h, absl::StrCat("host '", group.name, "' has no addresses"));
      for (const YAML::Node& a : Sequence(h["addresses"], "addresses")) {
        group.addresses.push_back(Address(a));
      }
      policy.hosts.push_back(std::move(group));
    }
  }
  std::set<std::string> groups;
  if (root["groups"]) {
    std::set<uint32_t> addresses;
    for (const YAML::Node& g : Sequence(root["groups"], "groups")) {
      GroupDef group = ParseGroup(g);
      if (!groups.insert(group.name).second) {
        Fail(g["name"], absl::StrCat("group '", group.name, "' defined twice"));
      }
      if (!addresses.insert(group.address).second) {
        Fail(g["address"], absl::StrCat("group '", group.name, "': address ",
                                        Ipv4ToString(group.address), " used by another group"));
      }
      policy.groups.push_back(std::move(group));
    }
  }
  if (!root["services"]) Fail(root, "missing 'services'");
  std::set<std::string> services;
  for (const YAML::Node& s : Sequence(root["services"], "services")) {
    Service svc = ParseService(s);
    if (!services.insert(svc.name).second) {
      Fail(s["name"], absl::StrCat("service '", svc.name, "' defined twice"));
    }
    policy.services.push_back(std::move(svc));
  }
  // References are checked after all definitions, so order in the file does not matter.
  const std::vector<YAML::Node> nodes = Sequence(root["services"], "services");
  for (size_t i = 0; i < policy.services.size(); ++i) {
    const Service& svc = policy.services[i];
    for (const char* list : {"depends_on", "accepts"}) {
      const std::vector<Peer>& peers =
          list[0] == 'd' ? svc.depends_on : svc.accepts;
      for (size_t j = 0; j < peers.size(); ++j) {
        const Peer& p = peers[j];
        const YAML::Node at = nodes[i][list][j];
        if (p.kind == Peer::Kind::kService && !services.count(p.name)) {
          Fail(at, absl::StrCat("service '", svc.name, "' depends on undefined service '",
                                p.name, "'"));
        }
        if (p.kind == Peer::Kind::kGroup && !groups.count(p.name)) {
          Fail(at, absl::StrCat("service '", svc.name, "' depends on undefined group '", p.name,
                                "' (define it under groups)"));
        }
        if (p.kind == Peer::Kind::kHost && !hosts.count(p.name)) {
          Fail(at, absl::StrCat("service '", svc.name, "' names undefined host '", p.name,
                                "' (define it under hosts)"));
        }
      }
    }
  }
  return policy;
}

std::string Where(absl::string_view file, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return absl::StrCat(file, ": ");
  return absl::StrCat(file, ":", mark.line + 1, ":", mark.column + 1, ": ");
}

}  // namespace

absl::StatusOr<PortRange> ParsePortRange(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  std::vector<absl::string_view> parts = absl::StrSplit(lower, absl::MaxSplits('/', 1));
  PortRange range;
  if (parts[0] == "any") {
    if (parts.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': 'any' takes no ports"));
    }
    return range;
  }
  if (parts[0] == "tcp") {
    range.proto = kTcp;
  } else if (parts[0] == "udp") {
    range.proto = kUdp;
  } else if (parts[0] == "icmp") {
    range.proto = kIcmp;
    if (parts.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': icmp takes no ports"));
    }
    return range;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown protocol '", parts[0], "' in '", text, "' (tcp, udp, icmp, any)"));
  }
  if (parts.size() == 1) return range;
  std::vector<absl::string_view> ends = absl::StrSplit(parts[1], absl::MaxSplits('-', 1));
  uint32_t first = 0, last = 0;
  if (!absl::SimpleAtoi(ends[0], &first) || first > 65535 ||
      !absl::SimpleAtoi(ends.size() > 1 ? ends[1] : ends[0], &last) || last > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': ports are numbers 0-65535, as PORT or FIRST-LAST"));
  }
  if (first > last) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': range runs backwards"));
  }
  range.first = static_cast<uint16_t>(first);
  range.last = static_cast<uint16_t>(last);
  return range;
}

std::string PortRangeToString(const PortRange& range) {
  const char* proto = range.proto == kTcp    ? "tcp"
                      : range.proto == kUdp  ? "udp"
                      : range.proto == kIcmp ? "icmp"
                      : range.proto == 0     ? "any"
                                             : nullptr;
  std::string name = proto ? proto : absl::StrCat("proto", int{range.proto});
  if (range.proto == 0 || (range.first == 0 && range.last == 65535)) return name;
  if (range.first == range.last) return absl::StrCat(name, "/", range.first);
  return absl::StrCat(name, "/", range.first, "-", range.last);
}

absl::StatusOr<Policy> ParsePolicy(absl::string_view text, absl::string_view file) {
  try {
    Policy policy = ParseRoot(YAML::Load(std::string(text)));
    policy.file = std::string(file);
    return policy;
  } catch (const PolicyError& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(file, e.mark), e.reason));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(file, e.mark), e.msg));
  }
}

absl::StatusOr<Policy> LoadPolicyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open policy file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParsePolicy(text.str(), path);
}

}  // namespace dctk::bastion
