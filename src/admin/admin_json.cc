#include "admin/admin_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <utility>

namespace weft::admin {
namespace {

using nlohmann::json;

// Error messages quote what the client sent; a long value is cut so that a 64 KiB body cannot
// make a 64 KiB error message.
constexpr size_t kQuotedValueMaxChars = 40;

// Deeper documents are refused while parsing: the API's forms nest 3 levels, and nlohmann's
// serializer recurses once per level, so 30000 nested brackets (60 KB) would overflow a stack the
// first time an error message quotes them.
constexpr int kNestingMaxDepth = 32;

struct TooDeep {};

std::string Quote(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kQuotedValueMaxChars) {
    text.resize(kQuotedValueMaxChars);
    text += "...";
  }
  return text;
}

std::string DescribeType(const json& value) {
  if (value.is_number_float()) return fmt::format("the non-integer {}", Quote(value));
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    return fmt::format("the negative number {}", Quote(value));
  }
  if (value.is_number()) return fmt::format("the number {}", Quote(value));
  std::string_view type = value.type_name();
  std::string_view article = type == "array" || type == "object" ? "an" : "a";
  return fmt::format("{} {} ({})", article, type, Quote(value));
}

Status CheckIsObject(const json& value, std::string_view what) {
  if (value.is_object()) return Status::Ok();
  return Status::InvalidArgument(
      fmt::format("{} must be a JSON object, got {}", what, DescribeType(value)));
}

// Rejects any field not in `allowed`, naming the fields that are.
Status CheckOnlyFields(const json& object, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string expected;
    for (std::string_view name : allowed) {
      expected += expected.empty() ? "" : ", ";
      expected += name;
    }
    return Status::InvalidArgument(
        fmt::format("unknown field {} (expected: {})", Quote(json(key)), expected));
  }
  return Status::Ok();
}

Result<const json*> GetField(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end()) {
    return Status::InvalidArgument(fmt::format("missing required field '{}'", key));
  }
  return &*it;
}

Result<std::string> GetString(const json& object, const std::string& key) {
  WEFT_ASSIGN_OR_RETURN(const json* value, GetField(object, key));
  if (!value->is_string()) {
    return Status::InvalidArgument(
        fmt::format("field '{}' must be a string, got {}", key, DescribeType(*value)));
  }
  return value->get<std::string>();
}

Result<uint64_t> GetUint64(const json& object, const std::string& key,
                           uint64_t max = std::numeric_limits<uint64_t>::max()) {
  WEFT_ASSIGN_OR_RETURN(const json* value, GetField(object, key));
  // nlohmann stores a non-negative integer literal that fits 64 bits as unsigned; a negative one
  // as signed; a fraction, an exponent or a larger integer as a double. Only the first is a size.
  if (!value->is_number_unsigned() || value->get<uint64_t>() > max) {
    return Status::InvalidArgument(fmt::format("field '{}' must be an integer from 0 to {}, got {}",
                                               key, max, DescribeType(*value)));
  }
  return value->get<uint64_t>();
}

Result<uint32_t> GetUint32(const json& object, const std::string& key) {
  WEFT_ASSIGN_OR_RETURN(uint64_t value,
                        GetUint64(object, key, std::numeric_limits<uint32_t>::max()));
  return static_cast<uint32_t>(value);
}

Result<bool> GetBool(const json& object, const std::string& key) {
  WEFT_ASSIGN_OR_RETURN(const json* value, GetField(object, key));
  if (!value->is_boolean()) {
    return Status::InvalidArgument(
        fmt::format("field '{}' must be true or false, got {}", key, DescribeType(*value)));
  }
  return value->get<bool>();
}

// {"name": n, ...}: every value a non-negative integer that fits 64 bits.
Result<Counters> GetCounters(const json& object, const std::string& what) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, what));
  Counters counters;
  for (const auto& [name, value] : object.items()) {
    Result<uint64_t> count = GetUint64(object, name);
    if (!count.ok()) {
      return Status::InvalidArgument(fmt::format("{}: {}", what, count.status().message()));
    }
    counters[name] = *count;
  }
  return counters;
}

// Counters are diagnostics added after the first release: a view from a weftd that has none
// parses with empty maps, but counters that are present must have their types.
Result<Counters> GetOptionalCounters(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end()) return Counters{};
  return GetCounters(*it, fmt::format("field '{}'", key));
}

Result<CounterGroups> GetOptionalCounterGroups(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end()) return CounterGroups{};
  WEFT_RETURN_IF_ERROR(CheckIsObject(*it, fmt::format("field '{}'", key)));
  CounterGroups groups;
  for (const auto& [name, value] : it->items()) {
    WEFT_ASSIGN_OR_RETURN(groups[name], GetCounters(value, fmt::format("{}.{}", key, name)));
  }
  return groups;
}

Result<json> ParseRequestObject(std::string_view body) {
  if (body.empty()) return Status::InvalidArgument("request body is empty; expected a JSON object");
  WEFT_ASSIGN_OR_RETURN(json object, ParseJson(body));
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "request body"));
  return object;
}

}  // namespace

json ToJson(const ContainerView& view) {
  return {{"name", view.name},
          {"replication_factor", view.replication_factor},
          {"vdisk_count", view.vdisk_count},
          {"provisioned_bytes", view.provisioned_bytes},
          {"used_bytes", view.used_bytes}};
}

json ToJson(const VdiskView& view) {
  return {{"name", view.name},
          {"container", view.container},
          {"size_bytes", view.size_bytes},
          {"used_bytes", view.used_bytes},
          {"mapped_vblocks", view.mapped_vblocks},
          {"created_unix_s", view.created_unix_s},
          {"nbd_uri", view.nbd_uri},
          {"open_connections", view.open_connections},
          {"stats", view.stats}};
}

json ToJson(const DiskView& view) {
  return {{"path", view.path},
          {"uuid", view.uuid},
          {"size_bytes", view.size_bytes},
          {"used_bytes", view.used_bytes},
          {"free_bytes", view.free_bytes},
          {"egroups", view.egroups},
          {"state", view.state}};
}

json ToJson(const NodeView& view) {
  json disks = json::array();
  for (const DiskView& disk : view.disks) disks.push_back(ToJson(disk));
  return {{"node_id", view.node_id},
          {"version", view.version},
          {"uptime_s", view.uptime_s},
          {"data_dir", view.data_dir},
          {"nbd_address", view.nbd_address},
          {"admin_address", view.admin_address},
          {"nbd_connections", view.nbd_connections},
          {"vdisk_count", view.vdisk_count},
          {"container_count", view.container_count},
          {"disks", std::move(disks)},
          {"cache", view.cache}};
}

json ToJson(const ClusterNodeView& view) {
  return {{"node_id", view.node_id},
          {"rpc_address", view.rpc_address},
          {"admin_address", view.admin_address},
          {"live", view.live},
          {"ring_state", view.ring_state},
          {"ring_tokens", view.ring_tokens}};
}

json ToJson(const ClusterView& view) {
  json nodes = json::array();
  for (const ClusterNodeView& node : view.nodes) nodes.push_back(ToJson(node));
  return {{"backend", view.backend},
          {"cluster_id", view.cluster_id},
          {"name", view.name},
          {"redundancy_factor", view.redundancy_factor},
          {"ring_replicas", view.ring_replicas},
          {"ring_epoch", view.ring_epoch},
          {"config_version", view.config_version},
          {"self_node_id", view.self_node_id},
          {"fenced", view.fenced},
          {"session", view.session},
          {"nodes", std::move(nodes)},
          {"ring", view.ring}};
}

json ToJson(const MetadataRowView& view) {
  return {{"key", view.key}, {"value", view.value}, {"version", view.version}};
}

json ErrorJson(std::string_view code, std::string_view message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

Result<json> ParseJson(std::string_view text) {
  auto limit_depth = [](int depth, json::parse_event_t, json&) {
    if (depth > kNestingMaxDepth) throw TooDeep();
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit_depth);
  } catch (const TooDeep&) {
    return Status::InvalidArgument(
        fmt::format("body is not valid JSON: nested deeper than {} levels", kNestingMaxDepth));
  } catch (const json::exception& error) {
    // what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ...": the
    // bracketed id means nothing to a client.
    std::string_view message = error.what();
    size_t id_end = message.find("] ");
    if (id_end != std::string_view::npos) message.remove_prefix(id_end + 2);
    return Status::InvalidArgument(fmt::format("body is not valid JSON: {}", message));
  }
}

Result<CreateContainerRequest> ParseCreateContainerRequest(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json object, ParseRequestObject(body));
  WEFT_RETURN_IF_ERROR(CheckOnlyFields(object, {"name", "replication_factor"}));
  CreateContainerRequest request;
  WEFT_ASSIGN_OR_RETURN(request.name, GetString(object, "name"));
  if (object.contains("replication_factor")) {
    WEFT_ASSIGN_OR_RETURN(request.replication_factor, GetUint32(object, "replication_factor"));
  }
  return request;
}

Result<CreateVdiskRequest> ParseCreateVdiskRequest(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json object, ParseRequestObject(body));
  WEFT_RETURN_IF_ERROR(CheckOnlyFields(object, {"name", "size_bytes", "container"}));
  CreateVdiskRequest request;
  WEFT_ASSIGN_OR_RETURN(request.name, GetString(object, "name"));
  WEFT_ASSIGN_OR_RETURN(request.size_bytes, GetUint64(object, "size_bytes"));
  if (object.contains("container")) {
    WEFT_ASSIGN_OR_RETURN(request.container, GetString(object, "container"));
  }
  return request;
}

Result<ResizeVdiskRequest> ParseResizeVdiskRequest(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json object, ParseRequestObject(body));
  WEFT_RETURN_IF_ERROR(CheckOnlyFields(object, {"size_bytes"}));
  ResizeVdiskRequest request;
  WEFT_ASSIGN_OR_RETURN(request.size_bytes, GetUint64(object, "size_bytes"));
  return request;
}

Result<MetadataPutRequest> ParseMetadataPutRequest(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json object, ParseRequestObject(body));
  WEFT_RETURN_IF_ERROR(CheckOnlyFields(object, {"value", "expected_version"}));
  MetadataPutRequest request;
  WEFT_ASSIGN_OR_RETURN(request.value, GetString(object, "value"));
  WEFT_ASSIGN_OR_RETURN(request.expected_version, GetUint64(object, "expected_version"));
  return request;
}

Result<ContainerView> ContainerViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "container"));
  ContainerView view;
  WEFT_ASSIGN_OR_RETURN(view.name, GetString(object, "name"));
  WEFT_ASSIGN_OR_RETURN(view.replication_factor, GetUint32(object, "replication_factor"));
  WEFT_ASSIGN_OR_RETURN(view.vdisk_count, GetUint64(object, "vdisk_count"));
  WEFT_ASSIGN_OR_RETURN(view.provisioned_bytes, GetUint64(object, "provisioned_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.used_bytes, GetUint64(object, "used_bytes"));
  return view;
}

Result<VdiskView> VdiskViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "vdisk"));
  VdiskView view;
  WEFT_ASSIGN_OR_RETURN(view.name, GetString(object, "name"));
  WEFT_ASSIGN_OR_RETURN(view.container, GetString(object, "container"));
  WEFT_ASSIGN_OR_RETURN(view.size_bytes, GetUint64(object, "size_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.used_bytes, GetUint64(object, "used_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.mapped_vblocks, GetUint64(object, "mapped_vblocks"));
  WEFT_ASSIGN_OR_RETURN(view.created_unix_s, GetUint64(object, "created_unix_s"));
  WEFT_ASSIGN_OR_RETURN(view.nbd_uri, GetString(object, "nbd_uri"));
  WEFT_ASSIGN_OR_RETURN(view.open_connections, GetUint32(object, "open_connections"));
  WEFT_ASSIGN_OR_RETURN(view.stats, GetOptionalCounterGroups(object, "stats"));
  return view;
}

Result<DiskView> DiskViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "disk"));
  DiskView view;
  WEFT_ASSIGN_OR_RETURN(view.path, GetString(object, "path"));
  WEFT_ASSIGN_OR_RETURN(view.uuid, GetString(object, "uuid"));
  WEFT_ASSIGN_OR_RETURN(view.size_bytes, GetUint64(object, "size_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.used_bytes, GetUint64(object, "used_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.free_bytes, GetUint64(object, "free_bytes"));
  WEFT_ASSIGN_OR_RETURN(view.egroups, GetUint64(object, "egroups"));
  WEFT_ASSIGN_OR_RETURN(view.state, GetString(object, "state"));
  return view;
}

Result<NodeView> NodeViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "node"));
  NodeView view;
  WEFT_ASSIGN_OR_RETURN(view.node_id, GetString(object, "node_id"));
  WEFT_ASSIGN_OR_RETURN(view.version, GetString(object, "version"));
  WEFT_ASSIGN_OR_RETURN(view.uptime_s, GetUint64(object, "uptime_s"));
  WEFT_ASSIGN_OR_RETURN(view.data_dir, GetString(object, "data_dir"));
  WEFT_ASSIGN_OR_RETURN(view.nbd_address, GetString(object, "nbd_address"));
  WEFT_ASSIGN_OR_RETURN(view.admin_address, GetString(object, "admin_address"));
  WEFT_ASSIGN_OR_RETURN(view.nbd_connections, GetUint32(object, "nbd_connections"));
  WEFT_ASSIGN_OR_RETURN(view.vdisk_count, GetUint64(object, "vdisk_count"));
  WEFT_ASSIGN_OR_RETURN(view.container_count, GetUint64(object, "container_count"));
  WEFT_ASSIGN_OR_RETURN(const nlohmann::json* disks, GetField(object, "disks"));
  if (!disks->is_array()) {
    return Status::InvalidArgument(
        fmt::format("field 'disks' must be an array, got {}", DescribeType(*disks)));
  }
  for (const nlohmann::json& disk : *disks) {
    WEFT_ASSIGN_OR_RETURN(DiskView disk_view, DiskViewFromJson(disk));
    view.disks.push_back(std::move(disk_view));
  }
  WEFT_ASSIGN_OR_RETURN(view.cache, GetOptionalCounters(object, "cache"));
  return view;
}

Result<ClusterNodeView> ClusterNodeViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "cluster node"));
  ClusterNodeView view;
  WEFT_ASSIGN_OR_RETURN(view.node_id, GetUint32(object, "node_id"));
  WEFT_ASSIGN_OR_RETURN(view.rpc_address, GetString(object, "rpc_address"));
  WEFT_ASSIGN_OR_RETURN(view.admin_address, GetString(object, "admin_address"));
  WEFT_ASSIGN_OR_RETURN(view.live, GetBool(object, "live"));
  WEFT_ASSIGN_OR_RETURN(view.ring_state, GetString(object, "ring_state"));
  WEFT_ASSIGN_OR_RETURN(view.ring_tokens, GetUint32(object, "ring_tokens"));
  return view;
}

Result<ClusterView> ClusterViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "cluster"));
  ClusterView view;
  WEFT_ASSIGN_OR_RETURN(view.backend, GetString(object, "backend"));
  WEFT_ASSIGN_OR_RETURN(view.cluster_id, GetString(object, "cluster_id"));
  WEFT_ASSIGN_OR_RETURN(view.name, GetString(object, "name"));
  WEFT_ASSIGN_OR_RETURN(view.redundancy_factor, GetUint32(object, "redundancy_factor"));
  WEFT_ASSIGN_OR_RETURN(view.ring_replicas, GetUint32(object, "ring_replicas"));
  WEFT_ASSIGN_OR_RETURN(view.ring_epoch, GetUint64(object, "ring_epoch"));
  WEFT_ASSIGN_OR_RETURN(view.config_version, GetUint64(object, "config_version"));
  WEFT_ASSIGN_OR_RETURN(view.self_node_id, GetUint32(object, "self_node_id"));
  WEFT_ASSIGN_OR_RETURN(view.fenced, GetBool(object, "fenced"));
  WEFT_ASSIGN_OR_RETURN(view.session, GetString(object, "session"));
  WEFT_ASSIGN_OR_RETURN(const json* nodes, GetField(object, "nodes"));
  if (!nodes->is_array()) {
    return Status::InvalidArgument(
        fmt::format("field 'nodes' must be an array, got {}", DescribeType(*nodes)));
  }
  for (const json& node : *nodes) {
    WEFT_ASSIGN_OR_RETURN(ClusterNodeView node_view, ClusterNodeViewFromJson(node));
    view.nodes.push_back(std::move(node_view));
  }
  WEFT_ASSIGN_OR_RETURN(view.ring, GetOptionalCounters(object, "ring"));
  return view;
}

Result<MetadataRowView> MetadataRowViewFromJson(const json& object) {
  WEFT_RETURN_IF_ERROR(CheckIsObject(object, "metadata row"));
  MetadataRowView view;
  WEFT_ASSIGN_OR_RETURN(view.key, GetString(object, "key"));
  WEFT_ASSIGN_OR_RETURN(view.value, GetString(object, "value"));
  WEFT_ASSIGN_OR_RETURN(view.version, GetUint64(object, "version"));
  return view;
}

}  // namespace weft::admin
