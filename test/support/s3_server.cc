#include "support/s3_server.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace mflow::test {

S3Server::S3Server(S3ServerOptions options) {
  const std::string script = std::string(MFLOW_SOURCE_DIR) + "/test/support/s3/s3_test_server.py";
  const std::string port_file = dir_.path() + "/port";
  std::vector<std::string> args = {"python3", script, "--port-file", port_file, "--data", dir_.path() + "/data",
                                   "--seed", std::to_string(options.seed), "--fault-rate",
                                   std::to_string(options.fault_rate),
                                   "--key", std::string(kAccessKey) + ":" + kSecret};
  if (!options.faults.empty()) {
    args.push_back("--faults");
    args.push_back(options.faults);
  }
  for (const auto& b : options.buckets) {
    args.push_back("--bucket");
    args.push_back(b);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::mkdir((dir_.path() + "/data").c_str(), 0700);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  const std::string log = dir_.path() + "/server.log";
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int rc = posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    why_ = "cannot start python3";
    pid_ = -1;
    return;
  }
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(port_file);
    if (in >> port_) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream err(log);
      std::stringstream ss;
      ss << err.rdbuf();
      why_ = "the S3 test server did not start: " + ss.str();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  why_ = "the S3 test server did not start within 30 s";
}

S3Server::~S3Server() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (std::getenv("MFLOW_S3_SERVER_LOG") != nullptr) {
    std::ifstream in(dir_.path() + "/server.log");
    std::ofstream(std::getenv("MFLOW_S3_SERVER_LOG"), std::ios::app) << in.rdbuf();
  }
}

s3::ConnectionSettings S3Server::settings() const {
  s3::ConnectionSettings s;
  s.endpoint = endpoint();
  s.custom_endpoint = true;
  s.region = "us-east-1";
  s.addressing = s3::Addressing::kPath;
  s.profile = "test";
  return s;
}

s3::Credentials S3Server::credentials() {
  s3::Credentials c;
  c.access_key_id = kAccessKey;
  c.secret_access_key = kSecret;
  c.source = "test keys";
  return c;
}

std::string S3Server::stats() const {
  std::string cmd = "python3 -c \"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('" +
                    endpoint() + "/__proxy/stats').read().decode())\"";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

}  // namespace mflow::test
