#include <assay/components.hpp>

#include <algorithm>

namespace assay {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::task: return "task";
    case Kind::model: return "model";
    case Kind::optimizer: return "optimizer";
    case Kind::precision: return "precision";
    case Kind::algorithm: return "algorithm";
    case Kind::analyzer: return "analyzer";
  }
  return "?";
}

namespace {
bool g_cuda_graph_active = false;
}  // namespace

bool cuda_graph_active() { return g_cuda_graph_active; }
void set_cuda_graph_active(bool active) { g_cuda_graph_active = active; }

void check_group_names(const Context& context, Model& model) {
  const auto groups = model.param_groups();
  for (const auto& [name, values] : context.group_values) {
    if (std::none_of(groups.begin(), groups.end(), [&](const ParamGroup& g) { return g.name == name; })) {
      std::string known;
      for (const auto& g : groups) known += (known.empty() ? "" : ", ") + g.name;
      throw std::invalid_argument("the recipe sets options for parameter group '" + name +
                                  "', which the model does not have (its groups: " + known + ")");
    }
  }
}

at::Tensor neuron_norms(Model& model, c10::ScalarType dtype) {
  at::Tensor squared;
  for (const auto& p : model.neuron_parameters()) {
    auto s = p.to(dtype).reshape({p.size(0), -1}).square().sum(1);
    squared = squared.defined() ? squared + s : s;
  }
  return squared.defined() ? squared.sqrt() : at::Tensor();
}

std::vector<ParamGroup> Model::param_groups() {
  ParamGroup all{"all", {}};
  for (auto& p : parameters()) all.params.push_back(p);
  return {all};
}

namespace {
[[noreturn]] void not_verifiable(const char* what) {
  throw std::logic_error(std::string("the task is not verifiable: it does not implement ") + what +
                         " (algorithms that sample and score, such as grpo, need a task that does)");
}
}  // namespace

PromptBatch Task::train_prompts(int64_t, int64_t) { not_verifiable("train_prompts"); }
PromptBatch Task::eval_prompts(std::string_view) { not_verifiable("eval_prompts"); }
Verdict Task::score(const std::vector<int64_t>&, const std::vector<int64_t>&) { not_verifiable("score"); }
CompletionFormat Task::completion_format() const { not_verifiable("completion_format"); }

at::Tensor Model::forward_with(const at::Tensor& inputs, const ForwardArgs& args) {
  if (args.attention_mask.defined() || args.position_ids.defined() || args.cache) {
    throw std::logic_error(name() + " supports neither attention masks, position ids nor a KV cache");
  }
  return forward(inputs);
}

std::vector<at::Tensor> Model::hidden_states(const at::Tensor&, const std::vector<int64_t>&) {
  throw std::logic_error(name() + " does not expose hidden states");
}

}  // namespace assay
