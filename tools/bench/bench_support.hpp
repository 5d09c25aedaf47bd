// Small helpers the C++ benchmarks share.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

/// The median (upper middle for an even count) of `v`.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Median seconds of `repeats` timed calls of `body` after 3 warm-up calls; `wait` (e.g. a CUDA synchronize) runs
/// before the clock starts and before it stops.
inline double median_seconds(const std::function<void()>& body, int repeats, const std::function<void()>& wait = [] {}) {
  for (int i = 0; i < 3; ++i) body();
  wait();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    body();
    wait();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(times);
}

/// "1,2,4" -> {1, 2, 4}.
inline std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace bench
