// The admin API's JSON forms: views to JSON (server side), request bodies from JSON (server side,
// strict), and views from JSON (client side, lenient). docs/admin-api.md shows every form.
//
// Nothing here throws: nlohmann exceptions are caught inside and turned into InvalidArgument, so
// that bad input from the network can never escape as an exception (DESIGN.md: bad input gets a
// clear error and never crashes the daemon).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "admin/admin_service.h"
#include "base/status.h"

namespace weft::admin {

// Field names are the struct members' names; integers are JSON numbers; counter maps are JSON
// objects ({"io":{"reads":3,...},...}).
nlohmann::json ToJson(const ContainerView& view);
nlohmann::json ToJson(const VdiskView& view);
nlohmann::json ToJson(const DiskView& view);
nlohmann::json ToJson(const NodeView& view);
nlohmann::json ToJson(const ClusterNodeView& view);
nlohmann::json ToJson(const ClusterView& view);
// {"key":..., "value":..., "version":...}. The API carries keys and values as JSON strings, so
// bytes that are not UTF-8 come out as U+FFFD (docs/admin-api.md).
nlohmann::json ToJson(const MetadataRowView& view);

// {"error":{"code":CODE,"message":MESSAGE}}: every error answer of the API has this form.
nlohmann::json ErrorJson(std::string_view code, std::string_view message);

// Parses `text` as one JSON document. InvalidArgument names the line and column of a syntax
// error.
Result<nlohmann::json> ParseJson(std::string_view text);

// Request bodies. The parsers are strict: the body must be a JSON object, required fields must be
// present, every field must have its type (sizes are non-negative integers that fit 64 bits), and
// an unknown field is an error, so that a typo is reported instead of silently ignored.
struct CreateContainerRequest {
  std::string name;
  uint32_t replication_factor = 1;  // Optional in the body.
};
struct CreateVdiskRequest {
  std::string name;
  uint64_t size_bytes = 0;
  std::string container;  // Optional in the body; empty: the default container.
};
struct ResizeVdiskRequest {
  uint64_t size_bytes = 0;
};
Result<CreateContainerRequest> ParseCreateContainerRequest(std::string_view body);
Result<CreateVdiskRequest> ParseCreateVdiskRequest(std::string_view body);
Result<ResizeVdiskRequest> ParseResizeVdiskRequest(std::string_view body);
// PUT /api/v1/metadata/{key}: both fields required; expected_version 0 creates the row.
struct MetadataPutRequest {
  std::string value;
  uint64_t expected_version = 0;
};
Result<MetadataPutRequest> ParseMetadataPutRequest(std::string_view body);

// Answers, for clients (the CLI). These are lenient about unknown fields, so that an older client
// still reads a newer server, but every field the view has must be present with its type. The
// counters (a vDisk's "stats", the node's "cache") are the exception: absent, they parse as empty
// maps (a weftd from before them); present, every counter must be a non-negative integer.
Result<ContainerView> ContainerViewFromJson(const nlohmann::json& json);
Result<VdiskView> VdiskViewFromJson(const nlohmann::json& json);
Result<DiskView> DiskViewFromJson(const nlohmann::json& json);
Result<NodeView> NodeViewFromJson(const nlohmann::json& json);
// A cluster view's "ring" counters are optional, as the node's "cache" is.
Result<ClusterNodeView> ClusterNodeViewFromJson(const nlohmann::json& json);
Result<ClusterView> ClusterViewFromJson(const nlohmann::json& json);
Result<MetadataRowView> MetadataRowViewFromJson(const nlohmann::json& json);

}  // namespace weft::admin
