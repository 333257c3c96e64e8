#include "bastion/manager/state_file.h"

#include <unistd.h>

#include <algorithm>
#include <optional>

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

using nlohmann::json;

json ToJson(const DatapathState& s) {
  json j;
  j["audit"] = s.audit;
  j["endpoints"] = json::array();
  for (const auto& [ip, e] : s.endpoints) {
    j["endpoints"].push_back({ip, e.container_id, e.mac.ToString(), e.host_ifindex});
  }
  j["bindings"] = json::array();
  for (const auto& [ifindex, b] : s.bindings) {
    j["bindings"].push_back({ifindex, b.container_id, b.ip, b.mac.ToString()});
  }
  j["hosts"] = json::array();
  for (const auto& [ip, id] : s.hosts) j["hosts"].push_back({ip, id});
  j["groups"] = json::array();
  for (const auto& [ip, g] : s.groups) {
    json members = json::array();
    for (const GroupMember& m : g.members) {
      members.push_back({m.container_id, m.host_ifindex, m.mac.ToString()});
    }
    j["groups"].push_back({ip, g.id, g.port, g.sequenced, members});
  }
  j["dependencies"] = json::array();
  for (const auto& [src, dst] : s.dependencies) j["dependencies"].push_back({src, dst});
  j["rules"] = json::array();
  for (const RuleBlock& r : s.rules) {
    j["rules"].push_back({r.src_id, r.dst_id, r.proto, r.first_port, r.last_port});
  }
  return j;
}

// Throws json exceptions on malformed input; the caller turns them into a Status.
DatapathState FromJson(const json& j) {
  DatapathState s;
  s.audit = j.at("audit").get<bool>();
  for (const json& e : j.at("endpoints")) {
    ContainerEndpoint ep{.container_id = e.at(1).get<uint32_t>(),
                         .mac = MacAddress::Parse(e.at(2).get<std::string>()).value(),
                         .host_ifindex = e.at(3).get<int>()};
    s.endpoints[e.at(0).get<uint32_t>()] = ep;
  }
  for (const json& b : j.at("bindings")) {
    s.bindings[b.at(0).get<int>()] =
        Binding{.container_id = b.at(1).get<uint32_t>(), .ip = b.at(2).get<uint32_t>(),
                .mac = MacAddress::Parse(b.at(3).get<std::string>()).value()};
  }
  for (const json& h : j.at("hosts")) s.hosts[h.at(0).get<uint32_t>()] = h.at(1).get<uint32_t>();
  if (j.contains("groups")) {  // absent in files written before groups existed
    for (const json& g : j.at("groups")) {
      Group group{.id = g.at(1).get<uint32_t>(), .port = g.at(2).get<uint16_t>(),
                  .sequenced = g.at(3).get<bool>(), .members = {}};
      for (const json& m : g.at(4)) {
        group.members.push_back({.container_id = m.at(0).get<uint32_t>(),
                                 .host_ifindex = m.at(1).get<int>(),
                                 .mac = MacAddress::Parse(m.at(2).get<std::string>()).value()});
      }
      s.groups[g.at(0).get<uint32_t>()] = std::move(group);
    }
  }
  for (const json& d : j.at("dependencies")) {
    s.dependencies.insert({d.at(0).get<uint32_t>(), d.at(1).get<uint32_t>()});
  }
  for (const json& r : j.at("rules")) {
    s.rules.insert({r.at(0).get<uint32_t>(), r.at(1).get<uint32_t>(), r.at(2).get<uint8_t>(),
                    r.at(3).get<uint16_t>(), r.at(4).get<uint16_t>()});
  }
  return s;
}

std::string JournalPath(const std::string& path) { return path + ".log"; }

absl::StatusOr<size_t> AppendLine(const std::string& path, const json& record) {
  const std::string line = record.dump() + "\n";
  std::ofstream out(JournalPath(path), std::ios::app);
  out << line;
  out.flush();
  if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("appending to ", JournalPath(path)));
  return line.size();
}

void ApplyDelta(SavedState& s, const StateDelta& d) {
  PatchState(s.applied, d.remove, d.add);
  for (const std::string& key : d.erased) {
    s.ids.erase(key);
    s.names.erase(key);
  }
  for (const auto& [key, id] : d.ids) s.ids[key] = id;
  for (const auto& [key, name] : d.names) s.names[key] = name;
  s.next_id = std::max(s.next_id, d.next_id);
  if (d.policy_text) s.policy_text = *d.policy_text;
  if (d.policy_file) s.policy_file = *d.policy_file;
}

}  // namespace

void PatchState(DatapathState& state, const DatapathState& remove, const DatapathState& add) {
  for (const auto& [ip, e] : remove.endpoints) state.endpoints.erase(ip);
  for (const auto& [ifindex, b] : remove.bindings) state.bindings.erase(ifindex);
  for (const auto& d : remove.dependencies) state.dependencies.erase(d);
  for (const auto& r : remove.rules) state.rules.erase(r);
  for (const auto& [ip, e] : add.endpoints) state.endpoints[ip] = e;
  for (const auto& [ifindex, b] : add.bindings) state.bindings[ifindex] = b;
  state.dependencies.insert(add.dependencies.begin(), add.dependencies.end());
  state.rules.insert(add.rules.begin(), add.rules.end());
  state.hosts = add.hosts;
  state.groups = add.groups;
}

absl::StatusOr<size_t> AppendStateDelta(const std::string& path, const StateDelta& delta) {
  json j;
  j["remove"] = ToJson(delta.remove);
  j["add"] = ToJson(delta.add);
  j["ids"] = delta.ids;
  j["names"] = delta.names;
  j["erased"] = delta.erased;
  j["next_id"] = delta.next_id;
  if (delta.policy_text) j["policy_text"] = *delta.policy_text;
  if (delta.policy_file) j["policy_file"] = *delta.policy_file;
  return AppendLine(path, json{{"delta", j}});
}

absl::StatusOr<size_t> AppendStateDeltaEnd(const std::string& path, bool done) {
  return AppendLine(path, json{{done ? "done" : "undone", true}});
}

absl::Status WriteStateFile(const std::string& path, const SavedState& state) {
  json j;
  j["applied"] = ToJson(state.applied);
  if (state.pending) j["pending"] = ToJson(*state.pending);
  j["ids"] = state.ids;
  j["names"] = state.names;
  j["next_id"] = state.next_id;
  j["policy_text"] = state.policy_text;
  j["policy_file"] = state.policy_file;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump();
    out.flush();
    if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("writing state file ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("renaming ", tmp, " to ", path));
  }
  // The snapshot includes every journalled change (replaying them again over it would
  // also be harmless: each record sets its keys to their later values).
  if (unlink(JournalPath(path).c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("removing ", JournalPath(path)));
  }
  return absl::OkStatus();
}

absl::StatusOr<SavedState> ReadStateFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no state file ", path));
  try {
    json j = json::parse(in);
    SavedState s;
    s.applied = FromJson(j.at("applied"));
    if (j.contains("pending")) s.pending = FromJson(j.at("pending"));
    s.ids = j.at("ids").get<std::map<std::string, uint32_t>>();
    s.names = j.at("names").get<std::map<std::string, std::string>>();
    s.next_id = j.at("next_id").get<uint32_t>();
    s.policy_text = j.at("policy_text").get<std::string>();
    s.policy_file = j.at("policy_file").get<std::string>();
    // Replay the journal. A torn last line (a crash mid-append) is ignored: its delta
    // had not started to apply, or its end marker is missing and the delta stays pending.
    std::ifstream log(JournalPath(path));
    std::optional<StateDelta> open;
    for (std::string line; std::getline(log, line);) {
      json r = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!r.is_object()) break;
      if (r.contains("delta")) {
        const json& d = r.at("delta");
        open = StateDelta{.remove = FromJson(d.at("remove")),
                          .add = FromJson(d.at("add")),
                          .ids = d.at("ids").get<std::map<std::string, uint32_t>>(),
                          .names = d.at("names").get<std::map<std::string, std::string>>(),
                          .erased = d.at("erased").get<std::vector<std::string>>(),
                          .next_id = d.at("next_id").get<uint32_t>(),
                          .policy_text = std::nullopt,
                          .policy_file = std::nullopt};
        if (d.contains("policy_text")) open->policy_text = d.at("policy_text").get<std::string>();
        if (d.contains("policy_file")) open->policy_file = d.at("policy_file").get<std::string>();
      } else if (open && r.contains("done")) {
        ApplyDelta(s, *open);
        open.reset();
      } else if (r.contains("undone")) {
        open.reset();
      }
    }
    if (open) {
      // The maps may hold any mix of before and after: adopt both.
      SavedState after = s;
      ApplyDelta(after, *open);
      s.pending = after.applied;  // the policy text stays the one before (state_file.h)
      s.ids = after.ids;
      s.names = after.names;
      s.next_id = after.next_id;
    }
    return s;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("state file ", path, " is damaged: ", e.what()));
  }
}

}  // namespace dctk::bastion
