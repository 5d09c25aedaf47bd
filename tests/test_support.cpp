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

#include <torch/serialize.h>
#include <torch/torch.h>

namespace assay::testing {

std::shared_ptr<Model> small_model(int64_t p, int64_t width, uint64_t seed) {
  Context context;
  context.task_shape = {p, p, 2};
  torch::manual_seed(seed);
  return plugins().create<Model>("quadratic_mlp", values_of(Kind::model, "quadratic_mlp", {{"width", width}}), context);
}

namespace {
std::shared_ptr<Optimizer> make_optimizer(const std::string& name, const Values& overrides, Model& model,
                                          const std::map<std::string, Values>& group_overrides = {}) {
  Context context;
  context.model = &model;
  const Values values = values_of(Kind::optimizer, name, overrides);
  for (const auto& [group, set] : group_overrides) {
    Values merged = values;
    for (const auto& [key, value] : set) merged[key] = value;
    context.group_values[group] = merged;
  }
  return plugins().create<Optimizer>(name, values, context);
}

void step_with(Optimizer& optimizer, Model& model, const std::vector<at::Tensor>& grads, double factor) {
  optimizer.set_lr_factor(factor);
  auto params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i].clone();
  optimizer.step();
}

std::vector<at::Tensor> random_grads(Model& model, int64_t step) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(1234 + step);
  std::vector<at::Tensor> grads;
  for (auto& p : model.parameters()) grads.push_back(torch::randn(p.sizes(), generator));
  return grads;
}

double factor_of(int step) { return 1.0 / (1.0 + 0.25 * step); }
}  // namespace

double max_difference_from_python(const std::string& name, const Values& overrides, const std::string& python_optimizer,
                                  int steps, const std::map<std::string, Values>& group_overrides) {
  auto model = small_model(7, 6);
  auto optimizer = make_optimizer(name, overrides, *model, group_overrides);
  c10::List<at::Tensor> saved;
  // Parameter order and grouping as the optimizer sees them: the model's param_groups().
  std::vector<int64_t> group_sizes;
  std::vector<at::Tensor> ordered;
  for (auto& group : model->param_groups()) {
    group_sizes.push_back(static_cast<int64_t>(group.params.size()));
    for (auto& p : group.params) ordered.push_back(p);
  }
  for (auto& p : ordered) saved.push_back(p.detach().clone());
  for (int step = 0; step < steps; ++step) {
    auto grads = random_grads(*model, step);
    step_with(*optimizer, *model, grads, factor_of(step));
    // Save grads in param_groups order (model.parameters() and param_groups() may differ in order).
    auto params = model->parameters();
    for (auto& p : ordered) {
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].is_same(p)) saved.push_back(grads[i]);
      }
    }
  }
  for (auto& p : ordered) saved.push_back(p.detach().clone());
  auto dir = temp_dir("optimizer-" + name);
  const std::string data = (dir / "trajectory.pt").string();
  auto bytes = torch::pickle_save(c10::IValue(saved));
  std::ofstream(data, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  std::string sizes;
  for (auto s : group_sizes) sizes += std::to_string(s) + ",";
  const std::string script = write_file(dir / "reference.py", R"(import sys, torch
torch.set_default_dtype(torch.float32)
data, sizes, steps = torch.load(sys.argv[1], weights_only=False), [int(s) for s in sys.argv[2].split(",") if s], int(sys.argv[3])
n = sum(sizes)
params = [t.clone().requires_grad_(True) for t in data[:n]]
groups, at = [], 0
for s in sizes:
    groups.append({"params": params[at:at + s]})
    at += s
optimizer = )" + python_optimizer + R"(
base = [g["lr"] for g in optimizer.param_groups]
for step in range(steps):
    for g, lr in zip(optimizer.param_groups, base):
        g["lr"] = lr / (1.0 + 0.25 * step)
    grads = data[n * (1 + step): n * (2 + step)]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    optimizer.step()
final = data[n * (1 + steps):]
print(max(float((p.detach() - f).abs().max()) for p, f in zip(params, final)))
)");
  std::string out;
  if (shell("python3 " + script + " " + data + " " + sizes + " " + std::to_string(steps), &out) != 0) {
    throw std::runtime_error("python reference failed: " + out);
  }
  return std::stod(out);
}

bool continues_identically_after_load(const std::string& name, const Values& overrides, int before, int after) {
  auto model = small_model(7, 6);
  auto optimizer = make_optimizer(name, overrides, *model);
  for (int step = 0; step < before; ++step) step_with(*optimizer, *model, random_grads(*model, step), factor_of(step));
  torch::serialize::OutputArchive archive;
  optimizer->save(archive);
  std::ostringstream buffer;
  archive.save_to(buffer);
  auto twin = small_model(7, 6);
  {
    torch::NoGradGuard no_grad;
    auto from = model->parameters(), to = twin->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  auto resumed = make_optimizer(name, overrides, *twin);
  torch::serialize::InputArchive input;
  std::istringstream in(buffer.str());
  input.load_from(in);
  resumed->load(input);
  for (int step = before; step < before + after; ++step) {
    auto grads = random_grads(*model, step);
    step_with(*optimizer, *model, grads, factor_of(step));
    step_with(*resumed, *twin, grads, factor_of(step));
  }
  auto a = model->parameters(), b = twin->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace assay::testing
