// The zero-filled WAL must recover exactly like a plain one: kill -9 a writer at random moments
// and check that every acknowledged (synced) put is there after reopening.
#include "extent_store/zeroed_wal_file_system.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace weft::extent_store {
namespace {

std::string Key(uint32_t index) { return "key-" + std::to_string(index); }
std::string Value(uint32_t index) { return std::string(700 + index % 900, char('a' + index % 26)); }

rocksdb::Options ZeroedWalOptions(rocksdb::Env* env) {
  rocksdb::Options options;
  options.env = env;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.write_buffer_size = 1 << 20;  // Several WAL files per run.
  return options;
}

// Child: synced puts from `first`, reporting each acknowledged index on `report_fd`, forever.
[[noreturn]] void WriteUntilKilled(const std::string& path, uint32_t first, int report_fd) {
  auto env = rocksdb::NewCompositeEnv(NewZeroedWalFileSystem(rocksdb::FileSystem::Default()));
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(ZeroedWalOptions(env.get()), path, &db).ok()) _exit(2);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  for (uint32_t index = first;; ++index) {
    if (!db->Put(synced, Key(index), Value(index)).ok()) _exit(3);
    if (write(report_fd, &index, sizeof(index)) != sizeof(index)) _exit(4);
  }
}

// The writer runs in a fresh process (fork + exec of this binary, selecting this test): a child
// merely forked from a process with RocksDB's background threads would inherit a thread pool
// without threads. It is told what to do through the environment.
TEST(ZeroedWalFileSystemTest, WriterChild) {
  const char* job = std::getenv("WEFT_ZEROED_WAL_CHILD");
  if (job == nullptr) GTEST_SKIP() << "runs only as the writer process of the kill -9 test";
  char path[512];
  unsigned first = 0;
  int report_fd = -1;
  ASSERT_EQ(std::sscanf(job, "%511[^,],%u,%d", path, &first, &report_fd), 3);
  WriteUntilKilled(path, first, report_fd);
}

// Waits up to `seconds` for the pipe to have data; false on timeout.
bool WaitReadable(int fd, int seconds) {
  pollfd poll_fd{fd, POLLIN, 0};
  return ::poll(&poll_fd, 1, seconds * 1000) == 1;
}

TEST(ZeroedWalFileSystemTest, AcknowledgedPutsSurviveKillNine) {
  const std::string path = ::testing::TempDir() + "/weft-zeroed-wal-" + std::to_string(getpid());
  std::filesystem::remove_all(path);
  std::mt19937 random(20261121);
  uint32_t next_index = 0;
  bool saw_zero_tail = false;
  for (int kill_round = 0; kill_round < 6; ++kill_round) {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(pipe_fds[0]);
      const std::string job =
          path + "," + std::to_string(next_index) + "," + std::to_string(pipe_fds[1]);
      setenv("WEFT_ZEROED_WAL_CHILD", job.c_str(), 1);
      char filter[] = "--gtest_filter=ZeroedWalFileSystemTest.WriterChild";
      char name[] = "zeroed_wal_writer";
      char* arguments[] = {name, filter, nullptr};
      execv("/proc/self/exe", arguments);
      _exit(5);
    }
    close(pipe_fds[1]);
    // Wait for the first acknowledgement (a slow machine may take a while to open the DB), then
    // let the writer run for a random time before killing it.
    uint32_t index = 0;
    uint32_t acknowledged = 0;
    bool any =
        WaitReadable(pipe_fds[0], 60) && read(pipe_fds[0], &index, sizeof(index)) == sizeof(index);
    if (any) acknowledged = index;
    usleep(20'000 + random() % 250'000);
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early with " << WEXITSTATUS(status);
    while (read(pipe_fds[0], &index, sizeof(index)) == sizeof(index)) {
      acknowledged = index;
      any = true;
    }
    close(pipe_fds[0]);
    ASSERT_TRUE(any) << "the writer acknowledged nothing before it was killed";
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.path().extension() == ".log" && entry.file_size() % (1 << 20) == 0 &&
          entry.file_size() > 0) {
        saw_zero_tail = true;
      }
    }
    rocksdb::DB* db = nullptr;
    auto env = rocksdb::NewCompositeEnv(NewZeroedWalFileSystem(rocksdb::FileSystem::Default()));
    const rocksdb::Status opened = rocksdb::DB::Open(ZeroedWalOptions(env.get()), path, &db);
    ASSERT_TRUE(opened.ok()) << "round " << kill_round << ": " << opened.ToString();
    for (uint32_t check = 0; check <= acknowledged; ++check) {
      std::string value;
      const rocksdb::Status got = db->Get(rocksdb::ReadOptions(), Key(check), &value);
      ASSERT_TRUE(got.ok()) << "round " << kill_round << ": acknowledged key " << check << " of "
                            << acknowledged << " lost: " << got.ToString();
      ASSERT_EQ(value, Value(check));
    }
    delete db;
    next_index = acknowledged + 1;
  }
  EXPECT_TRUE(saw_zero_tail) << "no WAL ever ended in zero-filled space: the test proves nothing";
  std::filesystem::remove_all(path);
}

}  // namespace
}  // namespace weft::extent_store
