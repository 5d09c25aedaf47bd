#include "test_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

namespace assay::testing {

const Registry& plugins() {
  static Registry* registry = [] {
    auto* r = new Registry();  // never destroyed: objects made in tests may outlive static destruction order
    r->load_directories({ASSAY_BINARY_DIR "/lib/assay/plugins"});
    return r;
  }();
  return *registry;
}

std::filesystem::path temp_dir(const std::string& name) {
  static const std::filesystem::path root = [] {
    char pattern[] = "/tmp/assay-test-XXXXXX";
    std::filesystem::path made = mkdtemp(pattern);
    return made;
  }();
  static struct Cleanup { ~Cleanup() { std::system(("rm -rf " + root.string()).c_str()); } } cleanup;
  auto dir = root / name;
  std::filesystem::create_directories(dir);
  return dir;
}

std::string write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

int shell(const std::string& command, std::string* output) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0) text.append(buffer, n);
  int status = pclose(pipe.release());
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Values values_of(Kind kind, const std::string& name, const Values& overrides) {
  const auto* component = plugins().find(kind, name);
  if (!component) throw std::runtime_error("test: no " + std::string(kind_name(kind)) + " " + name);
  Values values;
  for (const auto& p : component->info.schema) values[p.name] = p.default_value;
  for (const auto& [k, v] : overrides) values[k] = v;
  return values;
}

}  // namespace assay::testing
