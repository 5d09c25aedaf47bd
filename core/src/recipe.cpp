#include "recipe.hpp"

#include "recipe_loader.hpp"
#include "registry.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace assay {

using recipe_detail::Loader;
using recipe_detail::kOverrideSource;

double StageOptions::lr_factor(int64_t s) const {
  if (s < warmup_steps) return static_cast<double>(s + 1) / static_cast<double>(warmup_steps);
  if (lr_schedule == "constant") return 1.0;
  const int64_t span = std::max<int64_t>(1, steps - warmup_steps);
  const double t = std::min(1.0, static_cast<double>(s - warmup_steps) / static_cast<double>(span));
  const double decay = lr_schedule == "cosine" ? 0.5 * (1.0 + std::cos(std::numbers::pi * t)) : 1.0 - t;
  return min_lr_ratio + (1.0 - min_lr_ratio) * decay;
}

std::map<std::string, Values> ComponentSpec::group_values() const {
  std::map<std::string, Values> out;
  for (const auto& [group, overrides] : group_overrides) {
    Values merged = values;
    for (const auto& [key, value] : overrides) merged[key] = value;
    out[group] = std::move(merged);
  }
  return out;
}

int64_t Recipe::total_steps() const {
  int64_t total = 0;
  for (const auto& stage : stages) total += stage.options.steps;
  return total;
}

RecipeError::RecipeError(std::vector<std::string> list)
    : std::runtime_error([&] {
        std::string all;
        for (const auto& p : list) all += p + "\n";
        return all;
      }()),
      problems(std::move(list)) {}

namespace {

Schema concat(Schema a, const Schema& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides, const Registry& registry) {
  Loader loader(registry);
  Recipe recipe;
  recipe.path = path;
  recipe.overrides = overrides;
  {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    recipe.source = text.str();
  }
  std::vector<fs::path> chain;
  toml::table root = loader.read(path, chain);
  if (!loader.problems.empty()) throw RecipeError(loader.problems);
  for (const auto& o : overrides) loader.apply_override(root, o);

  static const std::set<std::string> kTopLevel = {"run", "task", "model", "optimizer", "algorithm",
                                                  "precision", "analyzers", "stages", "sweep"};
  recipe.has_sweep = root.contains("sweep");  // validated and expanded by sweep.cpp
  for (auto&& [k, node] : root) {
    const std::string key(k.str());
    if (kTopLevel.count(key)) continue;
    std::string message = "unknown top-level key";
    if (auto guess = closest(key, {kTopLevel.begin(), kTopLevel.end()}); !guess.empty()) {
      message += "; did you mean '" + guess + "'?";
    }
    loader.problem(&k.source(), key, message + " (valid: extends, run, task, model, optimizer, algorithm, precision, "
                                         "analyzers, stages, sweep)");
  }

  // [run]: run-wide options plus the stage defaults.
  const Schema run_schema = schema_of<RunOptions>();
  const Schema stage_schema = schema_of<StageOptions>();
  static const toml::table empty;
  const toml::node* run_node = root.get("run");
  const toml::table* run_table = run_node ? run_node->as_table() : &empty;
  if (!run_table) {
    loader.problem(run_node, "run", "expected a table");
    run_table = &empty;
  }
  recipe.run_values = loader.validate(*run_table, concat(run_schema, stage_schema), "run.", {}, nullptr, "[run]");
  recipe.run = options_from<RunOptions>(recipe.run_values);

  auto model = loader.component(root.get("model"), Kind::model, "model", "", nullptr);
  if (model) recipe.model = *model;

  // Top-level components: the single stage, or what [[stages]] inherit.
  const toml::node* stages_node = root.get("stages");
  const bool staged = stages_node != nullptr;
  auto top = [&](const char* key, Kind kind, const char* default_use) -> std::optional<ComponentSpec> {
    const toml::node* node = root.get(key);
    if (!node && staged && !*default_use) return std::nullopt;  // each stage must then name one
    return loader.component(node, kind, key, default_use, nullptr);
  };
  auto task = top("task", Kind::task, "");
  auto optimizer = top("optimizer", Kind::optimizer, "");
  auto algorithm = top("algorithm", Kind::algorithm, "ce");
  auto precision = top("precision", Kind::precision, "fp32");
  auto analyzers = loader.analyzers(root.get("analyzers"), "analyzers");

  if (!staged) {
    StageSpec stage;
    stage.name = "main";
    stage.options = options_from<StageOptions>(recipe.run_values);
    if (task && optimizer && algorithm && precision) {
      stage.task = *task, stage.optimizer = *optimizer, stage.algorithm = *algorithm, stage.precision = *precision;
      stage.precision_switches = loader.precision_switches(root.get("precision"), "precision", *precision);
    }
    stage.analyzers = analyzers;
    recipe.stages.push_back(std::move(stage));
  } else if (const auto* array = stages_node->as_array(); !array || array->empty()) {
    loader.problem(stages_node, "stages", "expected one or more [[stages]] tables");
  } else {
    recipe.explicit_stages = true;
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string prefix = "stages[" + std::to_string(i) + "]";
      const auto* table = array->get(i)->as_table();
      if (!table) {
        loader.problem(array->get(i), prefix, "expected a table");
        continue;
      }
      if (const auto* m = table->get("model")) {
        loader.problem(m, prefix + ".model", "the model carries over between stages: set [model] at the top level");
      }
      StageSpec stage;
      stage.name = "stage" + std::to_string(i);
      if (const auto* name = table->get("name")) {
        if (name->is_string()) {
          stage.name = name->as_string()->get();
        } else {
          loader.problem(name, prefix + ".name", "expected a string");
        }
      }
      Values stage_values = loader.validate(*table, stage_schema, prefix + ".",
                                            {"name", "task", "optimizer", "algorithm", "precision", "analyzers", "model"},
                                            &recipe.run_values, "a stage");
      stage.options = options_from<StageOptions>(stage_values);
      auto pick = [&](const char* key, Kind kind, const std::optional<ComponentSpec>& inherited) {
        return loader.component(table->get(key), kind, prefix + "." + key, "", inherited ? &*inherited : nullptr);
      };
      auto t = pick("task", Kind::task, task);
      auto o = pick("optimizer", Kind::optimizer, optimizer);
      auto a = pick("algorithm", Kind::algorithm, algorithm);
      auto p = pick("precision", Kind::precision, precision);
      stage.analyzers = table->contains("analyzers") ? loader.analyzers(table->get("analyzers"), prefix + ".analyzers")
                                                     : analyzers;
      if (t && o && a && p) {
        stage.task = *t, stage.optimizer = *o, stage.algorithm = *a, stage.precision = *p;
        stage.precision_switches = loader.precision_switches(table->get("precision"), prefix + ".precision", *p);
      }
      recipe.stages.push_back(std::move(stage));
    }
  }
  if (staged) {
    const auto* top_precision = root.get("precision") ? root.get("precision")->as_table() : nullptr;
    if (top_precision && top_precision->contains("switch")) {
      loader.problem(top_precision->get("switch"), "precision.switch",
                     "with [[stages]], a switch belongs to the stage it falls in: write it as [[stages.precision.switch]]");
    }
  }
  int64_t stage_start = 0;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const auto& stage = recipe.stages[i];
    const int64_t stage_end = stage_start + stage.options.steps;
    int64_t previous = stage_start;
    for (size_t k = 0; k < stage.precision_switches.size(); ++k) {
      const int64_t at = stage.precision_switches[k].at_step;
      if (at <= previous || at > stage_end) {
        loader.problem(static_cast<const toml::source_region*>(nullptr), stage.precision_switches[k].precision.table + ".at_step",
                       "at_step = " + std::to_string(at) + " must lie in steps " + std::to_string(previous + 1) + ".." +
                           std::to_string(stage_end) + (k > 0 ? " (after the previous switch, within the stage)" : " (within the stage)"));
      }
      previous = at;
    }
    stage_start = stage_end;
  }
  for (size_t i = 1; i < recipe.stages.size(); ++i) {
    const auto& stage = recipe.stages[i];
    const auto& previous = recipe.stages[i - 1];
    if (stage.options.keep_optimizer && (stage.optimizer.use != previous.optimizer.use ||
                                         stage.optimizer.values != previous.optimizer.values ||
                                         stage.optimizer.group_overrides != previous.optimizer.group_overrides)) {
      loader.problem(static_cast<const toml::source_region*>(nullptr), "stages[" + std::to_string(i) + "].keep_optimizer",
                     "the stage keeps the previous stage's optimizer, so its [optimizer] must be the same (" +
                         previous.optimizer.use + " with the same values)");
    }
  }
  if (!loader.problems.empty()) throw RecipeError(loader.problems);
  return recipe;
}

namespace {
void emit(std::ostringstream& out, const std::string& key, const Value& value, const std::string& doc) {
  std::string line = key + " = " + to_toml(value);
  if (!doc.empty()) line += std::string(line.size() < 36 ? 36 - line.size() : 1, ' ') + "# " + doc;
  out << line << "\n";
}
void emit_values(std::ostringstream& out, const Values& values, const Schema& schema) {
  for (const auto& param : schema) {
    if (auto it = values.find(param.name); it != values.end()) emit(out, param.name, it->second, param.doc);
  }
}
void emit_component(std::ostringstream& out, const std::string& header, const ComponentSpec& spec,
                    const Registry& registry, const std::string& first_line = "") {
  const auto* found = registry.find(spec.kind, spec.use);
  out << "\n" << header << "\n" << first_line;
  emit(out, "use", spec.use, found ? found->info.doc + " (plugin " + found->plugin->name + " " + found->plugin->version + ")" : "");
  if (found) emit_values(out, spec.values, found->info.schema);
  const std::string table = header.substr(header.find_first_not_of('['), header.find(']') - header.find_first_not_of('['));
  for (const auto& [group, overrides] : spec.group_overrides) {
    out << "\n[" << table << ".groups." << group << "]\n";
    if (found) emit_values(out, overrides, found->info.schema);
  }
}
void emit_switches(std::ostringstream& out, const std::string& table, const StageSpec& stage, const Registry& registry) {
  for (const auto& sw : stage.precision_switches) {
    std::string line = "at_step = " + std::to_string(sw.at_step);
    line += std::string(line.size() < 36 ? 36 - line.size() : 1, ' ') + "# from this global step on\n";
    emit_component(out, "[[" + table + ".switch]]", sw.precision, registry, line);
  }
}
}  // namespace

std::string Recipe::resolved(const Registry& registry) const {
  std::ostringstream out;
  out << "# Resolved from " << path;
  for (const auto& o : overrides) out << (&o == &overrides.front() ? " with " : " ") << o;
  out << ": every key, defaults filled in.\n\n[run]\n";
  emit_values(out, run_values, schema_of<RunOptions>());
  if (!explicit_stages) emit_values(out, run_values, schema_of<StageOptions>());
  emit_component(out, "[model]", model, registry);
  if (!explicit_stages) {
    const auto& stage = stages.front();
    emit_component(out, "[task]", stage.task, registry);
    emit_component(out, "[optimizer]", stage.optimizer, registry);
    emit_component(out, "[algorithm]", stage.algorithm, registry);
    emit_component(out, "[precision]", stage.precision, registry);
    emit_switches(out, "precision", stage, registry);
    for (const auto& a : stage.analyzers) emit_component(out, "[[analyzers]]", a, registry);
    return out.str();
  }
  const Schema stage_schema = schema_of<StageOptions>();
  for (const auto& stage : stages) {
    out << "\n[[stages]]\n";
    emit(out, "name", stage.name, "");
    // A describing pass over a copy reads the stage's current values as "defaults".
    StageOptions copy = stage.options;
    Fields current;
    copy.fields(current);
    Values values;
    for (const auto& param : current.schema()) values[param.name] = param.default_value;
    emit_values(out, values, stage_schema);
    emit_component(out, "[stages.task]", stage.task, registry);
    emit_component(out, "[stages.optimizer]", stage.optimizer, registry);
    emit_component(out, "[stages.algorithm]", stage.algorithm, registry);
    emit_component(out, "[stages.precision]", stage.precision, registry);
    emit_switches(out, "stages.precision", stage, registry);
    for (const auto& a : stage.analyzers) emit_component(out, "[[stages.analyzers]]", a, registry);
  }
  return out.str();
}

}  // namespace assay
