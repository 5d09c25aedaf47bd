#include "progress.hpp"

#include <cstdio>

namespace assay {

ProgressLine::ProgressLine(int64_t total_steps, bool interactive, double plain_seconds)
    : total_(total_steps), interactive_(interactive), plain_seconds_(plain_seconds),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string ProgressLine::duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return buf;
}

void ProgressLine::update(int64_t step, double loss, const std::string& stage) {
  auto now = std::chrono::steady_clock::now();
  if (first_step_ < 0) {
    first_step_ = step - 1;  // resumed runs measure speed from where they started
    start_ = now;
  }
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  const bool last = step >= total_;
  if (!last && since_draw < (interactive_ ? 0.1 : plain_seconds_)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(step - first_step_) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - step) / rate : -1;
  char line[256];
  std::snprintf(line, sizeof line, "%s step %lld/%lld (%.0f%%)  loss %.4g  %.1f steps/s  ETA %s", stage.c_str(),
                static_cast<long long>(step), static_cast<long long>(total_),
                total_ ? 100.0 * static_cast<double>(step) / static_cast<double>(total_) : 100.0, loss, rate,
                duration(eta).c_str());
  if (interactive_) {
    std::fprintf(stderr, "\033[2K\r%s", line);
    drawn_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (interactive_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace assay
