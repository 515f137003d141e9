// What the CLI's tests share: running the real `weft` binary with its output captured, and a
// fixture with an AdminHttpServer over the fake service on 127.0.0.1.
#pragma once

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "admin/admin_http_server.h"
#include "admin/admin_json.h"
#include "admin/fake_admin_service.h"

extern char** environ;

namespace weft::cli {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string command_line;  // For failure messages.
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Runs `weft ARGS...` with stdout and stderr captured in files. WEFT_ADMIN is removed from the
// environment unless `weft_admin` is given.
inline CommandResult RunWeft(const std::vector<std::string>& args,
                             const std::string& weft_admin = "") {
  CommandResult result;
  char out_path[] = "/tmp/weft_cli_test_out_XXXXXX";
  char err_path[] = "/tmp/weft_cli_test_err_XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  EXPECT_GE(out_fd, 0);
  EXPECT_GE(err_fd, 0);

  std::vector<std::string> argv_strings = {WEFT_CLI_PATH};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  argv.reserve(argv_strings.size() + 1);
  for (std::string& arg : argv_strings) {
    argv.push_back(arg.data());
    result.command_line += (result.command_line.empty() ? "" : " ") + arg;
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::string(*entry).rfind("WEFT_ADMIN=", 0) != 0) env_strings.push_back(*entry);
  }
  if (!weft_admin.empty()) {
    env_strings.push_back("WEFT_ADMIN=" + weft_admin);
    result.command_line = "WEFT_ADMIN=" + weft_admin + " " + result.command_line;
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  pid_t pid = -1;
  int spawn_error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(spawn_error, 0) << "cannot run " << argv[0];
  if (spawn_error == 0) {
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status)) << result.command_line << " did not exit normally";
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  }
  close(out_fd);
  close(err_fd);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  unlink(out_path);
  unlink(err_path);
  return result;
}

inline std::string Describe(const CommandResult& result) {
  return "$ " + result.command_line + "\nexit " + std::to_string(result.exit_code) + "\nstdout:\n" +
         result.out + "stderr:\n" + result.err;
}

class CliTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  void SetUp() override {
    admin::AdminHttpServerOptions options;
    options.port = 0;
    server_ = std::make_unique<admin::AdminHttpServer>(service_, options);
    Status status = server_->Start();
    ASSERT_TRUE(status.ok()) << status.ToString();
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  void TearDown() override { server_->Stop(); }

  // Runs weft against the test server; expects `exit_code`.
  CommandResult Weft(std::vector<std::string> args, int exit_code = 0) {
    args.insert(args.begin(), {"--admin", address_});
    CommandResult result = RunWeft(args);
    EXPECT_EQ(result.exit_code, exit_code) << Describe(result);
    return result;
  }

  // Runs weft with --json; expects success and returns the parsed stdout.
  json WeftJson(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    CommandResult result = Weft(args);
    Result<json> body = admin::ParseJson(result.out);
    EXPECT_TRUE(body.ok()) << "stdout is not JSON: " << Describe(result);
    EXPECT_EQ(result.err, "") << Describe(result);
    return body.ok() ? *body : json();
  }

  admin::FakeAdminService service_;
  std::unique_ptr<admin::AdminHttpServer> server_;
  std::string address_;
};

}  // namespace weft::cli
