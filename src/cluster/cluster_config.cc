#include "cluster/cluster_config.h"

#include <fmt/format.h>

#include <charconv>
#include <set>
#include <unordered_set>

namespace weft::cluster {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_position ? text[i] != '-' : !IsLowerHex(text[i])) return false;
  }
  return true;
}

// SplitMix64: a well-mixed 64-bit hash, so that nearby (node, index, seed) give unrelated values.
uint64_t Mix(uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

Status ValidateNode(const NodeConfig& node, size_t index, std::set<uint32_t>& node_ids,
                    std::set<std::string>& addresses) {
  const std::string field = fmt::format("nodes[{}]", index);
  if (node.node_id() == 0) return Status::InvalidArgument(field + ".node_id: must be >= 1");
  if (!node_ids.insert(node.node_id()).second) {
    return Status::InvalidArgument(
        fmt::format("{}.node_id: node id {} is used twice", field, node.node_id()));
  }
  for (const auto& [name, address] : {std::pair{"rpc_address", &node.rpc_address()},
                                      std::pair{"admin_address", &node.admin_address()}}) {
    Result<HostPort> parsed = ParseHostPort(*address);
    if (!parsed.ok()) {
      return Status::InvalidArgument(
          fmt::format("{}.{}: {}", field, name, parsed.status().message()));
    }
    if (!addresses.insert(*address).second) {
      return Status::InvalidArgument(
          fmt::format("{}.{}: address \"{}\" is used twice", field, name, *address));
    }
  }
  std::set<std::string> disk_paths;
  for (int i = 0; i < node.disks_size(); ++i) {
    const DiskConfig& disk = node.disks(i);
    const std::string disk_field = fmt::format("{}.disks[{}]", field, i);
    if (disk.path().empty()) return Status::InvalidArgument(disk_field + ".path: empty");
    if (!disk_paths.insert(disk.path()).second) {
      return Status::InvalidArgument(
          fmt::format("{}.path: \"{}\" is listed twice", disk_field, disk.path()));
    }
    if (disk.tier() != "ssd" && disk.tier() != "hdd") {
      return Status::InvalidArgument(
          fmt::format("{}.tier: \"{}\" is neither \"ssd\" nor \"hdd\"", disk_field, disk.tier()));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<HostPort> ParseHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument(fmt::format("\"{}\" is not host:port", address));
  }
  std::string_view host = address.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return Status::InvalidArgument(fmt::format("\"{}\": bad [IPv6] host", address));
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("\"{}\": an IPv6 host needs [brackets]", address));
  }
  const std::string_view port_text = address.substr(colon + 1);
  uint32_t port = 0;
  const auto [end, error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return Status::InvalidArgument(fmt::format("\"{}\": port must be 1..65535", address));
  }
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

Status ValidateClusterConfig(const ClusterConfig& config) {
  if (!IsUuid(config.cluster_id())) {
    return Status::InvalidArgument(
        fmt::format("cluster_id: \"{}\" is not a lowercase 8-4-4-4-12 uuid", config.cluster_id()));
  }
  if (config.redundancy_factor() != 2 && config.redundancy_factor() != 3) {
    return Status::InvalidArgument(
        fmt::format("redundancy_factor: {} is not 2 or 3", config.redundancy_factor()));
  }
  std::set<uint32_t> node_ids;
  std::set<std::string> addresses;
  std::unordered_set<uint64_t> tokens;
  for (int i = 0; i < config.nodes_size(); ++i) {
    WEFT_RETURN_IF_ERROR(ValidateNode(config.nodes(i), i, node_ids, addresses));
    for (int t = 0; t < config.nodes(i).ring_tokens_size(); ++t) {
      const uint64_t token = config.nodes(i).ring_tokens(t);
      if (!tokens.insert(token).second) {
        return Status::InvalidArgument(fmt::format(
            "nodes[{}].ring_tokens[{}]: token {} is already used in the ring", i, t, token));
      }
    }
  }
  std::set<std::string> container_names;
  for (int i = 0; i < config.containers_size(); ++i) {
    const ContainerConfig& container = config.containers(i);
    if (container.name().empty()) {
      return Status::InvalidArgument(fmt::format("containers[{}].name: empty", i));
    }
    if (!container_names.insert(container.name()).second) {
      return Status::InvalidArgument(
          fmt::format("containers[{}].name: \"{}\" is used twice", i, container.name()));
    }
    if (container.replication_factor() < 1 || container.replication_factor() > 3) {
      return Status::InvalidArgument(fmt::format(
          "containers[{}].replication_factor: {} is not 1..3", i, container.replication_factor()));
    }
  }
  return Status::Ok();
}

std::vector<uint64_t> MakeRingTokens(uint32_t node_id, uint32_t count, uint64_t seed,
                                     std::span<const uint64_t> existing) {
  WEFT_ASSERT(count > 0);
  std::unordered_set<uint64_t> taken(existing.begin(), existing.end());
  const uint64_t arc = ~uint64_t{0} / count;  // The ring split into `count` equal arcs.
  std::vector<uint64_t> tokens;
  tokens.reserve(count);
  for (uint32_t index = 0; index < count; ++index) {
    // A hashed position inside arc `index`; on a collision, the next hash of the same arc.
    for (uint64_t attempt = 0;; ++attempt) {
      const uint64_t hash = Mix(Mix(Mix(seed) ^ node_id) ^ (uint64_t{index} << 32 | attempt));
      const uint64_t token = arc * index + hash % arc;
      if (taken.insert(token).second) {
        tokens.push_back(token);
        break;
      }
    }
  }
  WEFT_ASSERT(tokens.size() == count);
  return tokens;
}

std::vector<uint64_t> AllRingTokens(const ClusterConfig& config) {
  std::vector<uint64_t> tokens;
  for (const NodeConfig& node : config.nodes()) {
    tokens.insert(tokens.end(), node.ring_tokens().begin(), node.ring_tokens().end());
  }
  return tokens;
}

}  // namespace weft::cluster
