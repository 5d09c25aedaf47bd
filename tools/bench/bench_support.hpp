// Small helpers the C++ benchmarks share.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <type_traits>
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

/// Command-line options as "--name value" pairs: bind each to a variable holding its default, then parse.
class Flags {
 public:
  template <class T>
  Flags& add(const std::string& name, T& target) {
    setters_["--" + name] = [&target](const std::string& text) {
      if constexpr (std::is_same_v<T, std::string>) target = text;
      else if constexpr (std::is_integral_v<T>) target = static_cast<T>(std::stoll(text));
      else target = static_cast<T>(std::stod(text));
    };
    return *this;
  }
  /// False (after saying which on stderr) for an unknown option or one without a value.
  bool parse(int argc, char** argv) const {
    for (int i = 1; i < argc; i += 2) {
      const auto it = setters_.find(argv[i]);
      if (it == setters_.end() || i + 1 >= argc) {
        std::fprintf(stderr, "unknown option or missing value: %s\n", argv[i]);
        return false;
      }
      it->second(argv[i + 1]);
    }
    return true;
  }

 private:
  std::map<std::string, std::function<void(const std::string&)>> setters_;
};

/// "1,2,4" -> {1, 2, 4}.
inline std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace bench
