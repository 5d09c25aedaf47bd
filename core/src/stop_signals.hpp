#pragma once
// How the launchers (`assay sweep`, `assay run --nproc`) catch SIGINT/SIGTERM while they wait for children.
#include <csignal>

namespace assay {

/// Installs `handler` for SIGINT and SIGTERM without SA_RESTART, so that a waitpid blocked in the
/// launcher returns EINTR and the launcher can pass the signal on (std::signal restarts the call: a
/// `kill` of the launcher alone would reach no child until one ended by itself).
inline void catch_stop_signals(void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace assay
