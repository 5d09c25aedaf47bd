#pragma once
// Live progress of a run: a redrawn status line on a terminal, periodic plain lines otherwise.
#include <chrono>
#include <cstdint>
#include <string>

namespace assay {

class ProgressLine {
 public:
  /// `interactive`: stderr is a terminal. Plain mode prints a line every `plain_seconds`.
  ProgressLine(int64_t total_steps, bool interactive, double plain_seconds = 10);
  /// Called after every step; cheap when nothing is due.
  void update(int64_t step, double loss, const std::string& stage);
  /// Ends the status line (terminal mode).
  void finish();
  /// "1:02:03"
  static std::string duration(double seconds);

 private:
  int64_t total_, first_step_ = -1;
  bool interactive_;
  double plain_seconds_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace assay
