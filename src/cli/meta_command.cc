// weft meta get|put|delete|scan: rows of the node's global metadata store (the Paxos ring in a
// cluster, the local store on a single node) through the admin API. Every update is a
// compare-and-set on the row's version: 0 creates a row, and a stale version fails with the
// server's "version conflict" message.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/table.h"

namespace weft::cli {
namespace {

using admin::MetadataRowView;
using nlohmann::json;

// Values longer than this are cut in `scan` tables (`get` and --json show them whole).
constexpr size_t kTableValueMaxChars = 60;

struct Arguments {
  std::string key;  // The key for get/put/delete, the prefix for scan.
  std::string value;
  uint64_t version = 0;
  std::string start_after;
  uint32_t limit = 100;  // The server's default too.
};

std::string RowPath(const std::string& key) { return "/api/v1/metadata/" + EncodePathSegment(key); }

// Control characters would garble a terminal: show them as \xNN (and a backslash as \\). Cut
// after `max_chars` characters of the escaped form.
std::string Printable(const std::string& text, size_t max_chars = std::string::npos) {
  std::string shown;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      shown += fmt::format("\\x{:02x}", byte);
    } else if (c == '\\') {
      shown += "\\\\";
    } else {
      shown += c;
    }
  }
  if (shown.size() > max_chars) shown = shown.substr(0, max_chars) + "...";
  return shown;
}

ExitCode RunGet(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Get(RowPath(arguments.key));
  if (!answer.ok()) return Fail(answer);
  Result<MetadataRowView> row = admin::MetadataRowViewFromJson(answer.body);
  if (!row.ok()) return FailUnexpected(row.status());
  if (options.json) {
    PrintJson(answer.body);
    return ExitCode::kOk;
  }
  std::cout << RenderFields({{"Key", Printable(row->key)},
                             {"Version", std::to_string(row->version)},
                             {"Value", Printable(row->value)}});
  return ExitCode::kOk;
}

ExitCode RunPut(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer =
      client.Put(RowPath(arguments.key),
                 json{{"value", arguments.value}, {"expected_version", arguments.version}});
  if (!answer.ok()) return Fail(answer);
  Result<MetadataRowView> row = admin::MetadataRowViewFromJson(answer.body);
  if (!row.ok()) return FailUnexpected(row.status());
  if (options.json) {
    PrintJson(answer.body);
  } else {
    std::cout << fmt::format("{} '{}': version {}.\n",
                             arguments.version == 0 ? "Created" : "Updated", Printable(row->key),
                             row->version);
  }
  return ExitCode::kOk;
}

ExitCode RunDelete(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  ApiAnswer answer = client.Delete(
      fmt::format("{}?expected_version={}", RowPath(arguments.key), arguments.version));
  if (!answer.ok()) return Fail(answer);
  if (!options.json) {
    std::cout << fmt::format("Deleted '{}' (was version {}).\n", Printable(arguments.key),
                             arguments.version);
  }
  return ExitCode::kOk;
}

ExitCode RunScan(const GlobalOptions& options, const Arguments& arguments) {
  AdminClient client = MakeClient(options);
  std::string path = "/api/v1/metadata?prefix=" + EncodePathSegment(arguments.key);
  if (!arguments.start_after.empty()) {
    path += "&start_after=" + EncodePathSegment(arguments.start_after);
  }
  path += fmt::format("&limit={}", arguments.limit);
  ApiAnswer answer = client.Get(path);
  if (!answer.ok()) return Fail(answer);
  if (!answer.body.is_object() || !answer.body.contains("rows") ||
      !answer.body["rows"].is_array()) {
    return FailUnexpected(Status::InvalidArgument("no \"rows\" array"));
  }
  using Align = Table::Align;
  Table table({{"KEY"}, {"VERSION", Align::kRight}, {"VALUE"}});
  std::string last_key;
  for (const json& item : answer.body["rows"]) {
    Result<MetadataRowView> row = admin::MetadataRowViewFromJson(item);
    if (!row.ok()) return FailUnexpected(row.status());
    table.AddRow({Printable(row->key), std::to_string(row->version),
                  Printable(row->value, kTableValueMaxChars)});
    last_key = row->key;
  }
  if (options.json) {
    PrintJson(answer.body);
  } else if (answer.body["rows"].empty()) {
    std::cout << fmt::format("No rows with prefix '{}'{}.\n", Printable(arguments.key),
                             arguments.start_after.empty() ? "" : " after the start key");
  } else {
    std::cout << table.Render();
    // A full page may have more behind it: say how to get the next one.
    if (answer.body["rows"].size() == arguments.limit) {
      std::cout << fmt::format("(limit reached; continue with --start-after '{}')\n",
                               Printable(last_key));
    }
  }
  return ExitCode::kOk;
}

}  // namespace

void AddMetaCommands(CLI::App& app, const GlobalOptions& options, Action& action) {
  CLI::App* group = app.add_subcommand(
      "meta",
      "Read and compare-and-set rows of the global metadata store (the Paxos ring in a cluster)");
  group->require_subcommand(1);
  auto arguments = std::make_shared<Arguments>();

  CLI::App* get = AddCommand(*group, "get", "Show a row: key, version, value", options, action,
                             arguments, RunGet);
  get->add_option("KEY", arguments->key, "Row key")->type_name("")->required();

  CLI::App* put = AddCommand(*group, "put",
                             "Create a row (--version 0, the default) or replace the row at "
                             "--version; prints the new version",
                             options, action, arguments, RunPut);
  put->add_option("KEY", arguments->key, "Row key")->type_name("")->required();
  put->add_option("VALUE", arguments->value, "New value (text)")->type_name("")->required();
  put->add_option("--version", arguments->version,
                  "The row's current version; 0 creates it (fails if it exists)")
      ->type_name("V")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);

  CLI::App* remove = AddCommand(*group, "delete", "Delete a row at its current --version", options,
                                action, arguments, RunDelete);
  remove->add_option("KEY", arguments->key, "Row key")->type_name("")->required();
  remove->add_option("--version", arguments->version, "The row's current version")
      ->type_name("V")
      ->required()
      ->check(CLI::NonNegativeNumber);

  CLI::App* scan =
      AddCommand(*group, "scan", "List rows whose key starts with PREFIX, in key order", options,
                 action, arguments, RunScan);
  scan->add_option("PREFIX", arguments->key, "Key prefix (default: every row)")->type_name("");
  scan->add_option("--start-after", arguments->start_after,
                   "Start after this key (the last key of the previous page)")
      ->type_name("KEY");
  scan->add_option("--limit", arguments->limit, "At most this many rows")
      ->type_name("N")
      ->default_val(100)
      ->check(CLI::Range(uint32_t{1}, uint32_t{10000}));
}

}  // namespace weft::cli
