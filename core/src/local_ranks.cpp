// `assay run --nproc N`: N processes of one data-parallel run on this host, started the way torchrun
// starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so the run itself cannot tell.
#include "commands.hpp"
#include "env.hpp"
#include "stop_signals.hpp"
#include "store.hpp"

#include <assay/log.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

namespace assay {
namespace {

/// A TCP port nothing listens on now (the kernel's choice); rank 0 binds it moments later.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int port = 29500;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

volatile std::sig_atomic_t g_launcher_signal = 0;
void on_launcher_signal(int signal) { g_launcher_signal = signal; }

}  // namespace

int run_local_ranks(const RunRequest& request, int nproc) {
  if (std::getenv("WORLD_SIZE")) {
    std::cerr << "--nproc inside a launched job (WORLD_SIZE is set): use one or the other\n";
    return kExitBadInput;
  }
  std::vector<std::string> args = {std::filesystem::read_symlink("/proc/self/exe").string(), "run", request.recipe,
                                   "--out", request.out};
  if (request.resume) args.push_back("--resume");
  if (!request.from.empty()) args.insert(args.end(), {"--from", request.from});
  for (const auto& d : request.plugin_dirs) args.insert(args.end(), {"--plugins", d});
  args.insert(args.end(), request.overrides.begin(), request.overrides.end());
  const std::string port = std::to_string(free_port());
  // Threads per rank so that the ranks share the cores, unless the recipe or an override says otherwise
  // (the runner reads ASSAY_DEFAULT_THREADS only when run.threads = 0).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));
  log::info("data parallel: starting ", nproc, " local processes (rendezvous 127.0.0.1:", port, ")");

  std::map<pid_t, int> ranks;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", port.c_str(), 1);
      setenv("ASSAY_DEFAULT_THREADS", threads.c_str(), 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ranks[pid] = rank;
  }
  // The signals go to the ranks (they agree to checkpoint and stop together); a rank that fails takes the
  // others down, since they would otherwise wait for it until the collective timeout.
  catch_stop_signals(on_launcher_signal);
  int code = kExitOk;
  bool stopping = false;
  std::string failure;
  while (!ranks.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno != EINTR) break;
      for (auto& [child, rank] : ranks) kill(child, static_cast<int>(g_launcher_signal));
      continue;
    }
    auto it = ranks.find(pid);
    if (it == ranks.end()) continue;
    const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (it->second == 0 || (exit_code != kExitOk && code == kExitOk)) code = exit_code;
    if (exit_code != kExitOk && exit_code != kExitInterrupted && exit_code != kExitDiverged && !stopping) {
      // The others are (or soon will be) waiting for it in a collective, until the timeout.
      log::error("data parallel: rank ", it->second, " exited with ", exit_code, "; stopping the others");
      for (auto& [child, rank] : ranks) {
        if (child != pid) kill(child, SIGKILL);
      }
      stopping = true;
      failure = "rank " + std::to_string(it->second) + " exited with " + std::to_string(exit_code) +
                (it->second == 0 ? "" : " (its log: stderr of assay run --nproc)");
    }
    ranks.erase(it);
  }
  // Rank 0 recorded its own failure; a failure elsewhere killed it before it could: record it here.
  const std::string store = (std::filesystem::path(request.out) / "run.h5").string();
  if (!failure.empty() && std::filesystem::exists(store) && summarize_store(store).status == "running") {
    try {
      auto writer = RunStore::append_to(store);
      writer->event(summarize_store(store).last_step, "error", "data parallel: " + failure);
      writer->attribute("status", "failed");
      writer->attribute("finished", utc_now());
      writer->flush();
    } catch (const std::exception& e) {
      log::error("could not record the failure in ", store, ": ", e.what());
    }
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return code;
}

}  // namespace assay
