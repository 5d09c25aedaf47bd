#include "recipe.hpp"

#include "registry.hpp"

#include <toml++/toml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace assay {

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

constexpr const char* kOverrideSource = "<command line>";

/// Collects problems and reads/merges TOML with source positions intact.
class Loader {
 public:
  explicit Loader(const Registry& registry) : registry_(registry) {}

  std::vector<std::string> problems;

  void problem(const toml::node* node, const std::string& key, const std::string& message) {
    problem(node ? &node->source() : nullptr, key, message);
  }
  void problem(const toml::source_region* source, const std::string& key, const std::string& message) {
    problems.push_back(where(source) + key + (key.empty() ? "" : ": ") + message);
  }

  std::string where(const toml::source_region* source) const {
    if (source && source->path && *source->path == kOverrideSource) return "command line: ";
    if (source && source->path) {
      return *source->path + ":" + std::to_string(source->begin.line) + ":" + std::to_string(source->begin.column) + ": ";
    }
    return root_file_ + ": ";
  }

  toml::table read(const fs::path& path, std::vector<fs::path>& chain) {
    if (chain.empty()) root_file_ = path.string();
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (const auto& file : chain) cycle += file.filename().string() + " -> ";
      problems.push_back(chain.front().string() + ": extends cycle: " + cycle + path.filename().string());
      return {};
    }
    if (!fs::is_regular_file(path)) {
      problems.push_back(path.string() + ": no such recipe file");
      return {};
    }
    toml::table table;
    try {
      table = toml::parse_file(path.string());
    } catch (const toml::parse_error& e) {
      const auto& at = e.source();
      problems.push_back(path.string() + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column) +
                         ": TOML syntax error: " + std::string(e.description()));
      return {};
    }
    chain.push_back(canonical);
    if (const toml::node* extends = table.get("extends")) {
      if (!extends->is_string()) {
        problem(extends, "extends", "expected a string (path of the base recipe, relative to this file)");
        return table;
      }
      fs::path base = path.parent_path() / extends->as_string()->get();
      table.erase("extends");
      toml::table merged = read(base, chain);
      merge(merged, std::move(table));
      return merged;
    }
    return table;
  }

  /// Deep merge: tables merge key by key, anything else (arrays of tables included) replaces.
  static void merge(toml::table& into, toml::table&& from) {
    for (auto&& [key, node] : from) {
      toml::node* existing = into.get(key.str());
      if (existing && existing->is_table() && node.is_table()) {
        merge(*existing->as_table(), std::move(*node.as_table()));
      } else {
        node.visit([&, &k = key](auto&& concrete) { into.insert_or_assign(k, std::move(concrete)); });
      }
    }
  }

  void apply_override(toml::table& root, const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      problems.push_back("command line: '" + text + "': expected key=value, e.g. optimizer.lr=1e-3");
      return;
    }
    const std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
    std::vector<std::string> parts;
    std::istringstream segments(key);
    for (std::string part; std::getline(segments, part, '.');) parts.push_back(part);
    // A value that is not TOML (task.use=count) is taken as a string.
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + raw, std::string_view(kOverrideSource));
    } catch (const toml::parse_error&) {
      parsed = toml::parse("v = " + to_toml(raw), std::string_view(kOverrideSource));
    }
    toml::node* at = &root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto& part = parts[i];
      if (auto* array = at->as_array()) {
        size_t index = 0;
        if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos ||
            (index = std::stoul(part)) >= array->size()) {
          problems.push_back("command line: '" + text + "': '" + part + "' is not an index of " +
                             std::to_string(array->size()) + " entries");
          return;
        }
        at = array->get(index);
        continue;
      }
      auto* table = at->as_table();
      if (!table) {
        problems.push_back("command line: '" + text + "': '" + part + "' is not a table");
        return;
      }
      if (!table->contains(part)) {  // a table created from the command line, positioned there
        toml::table made = toml::parse("v = {}", std::string_view(kOverrideSource));
        table->insert(part, std::move(*made.get("v")->as_table()));
      }
      at = table->get(part);
    }
    auto* table = at->as_table();
    if (!table) {
      problems.push_back("command line: '" + text + "': cannot set a key inside a non-table");
      return;
    }
    parsed.get("v")->visit([&](auto&& concrete) { table->insert_or_assign(parts.back(), std::move(concrete)); });
  }

  static std::string got(const toml::node& node) {
    std::ostringstream out;
    node.visit([&](auto&& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, toml::table>) out << "a table";
      else if constexpr (std::is_same_v<T, toml::array>) out << "an array " << v;
      else if constexpr (std::is_same_v<T, toml::value<std::string>>) out << "string \"" << v.get() << "\"";
      else if constexpr (std::is_same_v<T, toml::value<bool>>) out << "boolean " << v;
      else if constexpr (std::is_same_v<T, toml::value<int64_t>>) out << "integer " << v;
      else if constexpr (std::is_same_v<T, toml::value<double>>) out << "float " << v;
      else out << v;
    });
    return out.str();
  }

  static std::string expected(const Param& param) { return "expected " + describe_type(param); }

  /// Converts one node to the parameter's type, or reports why not.
  std::optional<Value> convert(const toml::node& node, const Param& param, const std::string& key) {
    auto scalar = [&](const toml::node& n, Type type) -> std::optional<Value> {
      switch (type) {
        case Type::boolean: if (auto v = n.value_exact<bool>()) return *v; break;
        case Type::integer: if (auto v = n.value_exact<int64_t>()) return *v; break;
        case Type::real:
          if (n.is_floating_point()) return n.as_floating_point()->get();
          if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
          break;
        case Type::string: if (auto v = n.value_exact<std::string>()) return *v; break;
        default: break;
      }
      return std::nullopt;
    };
    auto in_range = [&](double x) { return (!param.min || x >= *param.min) && (!param.max || x <= *param.max); };
    auto allowed = [&](const std::string& s) {
      return param.choices.empty() || std::find(param.choices.begin(), param.choices.end(), s) != param.choices.end();
    };
    auto fail = [&]() -> std::optional<Value> {
      problem(&node, key, expected(param) + ", got " + got(node));
      return std::nullopt;
    };
    const bool is_list = param.type == Type::integer_list || param.type == Type::real_list || param.type == Type::string_list;
    if (!is_list) {
      auto value = scalar(node, param.type);
      if (!value) return fail();
      if (auto* i = std::get_if<int64_t>(&*value); i && !in_range(static_cast<double>(*i))) return fail();
      if (auto* d = std::get_if<double>(&*value); d && !in_range(*d)) return fail();
      if (auto* s = std::get_if<std::string>(&*value); s && !allowed(*s)) return fail();
      return value;
    }
    const auto* array = node.as_array();
    if (!array) return fail();
    const Type element = param.type == Type::integer_list ? Type::integer
                         : param.type == Type::real_list  ? Type::real
                                                          : Type::string;
    std::vector<int64_t> ints;
    std::vector<double> reals;
    std::vector<std::string> strings;
    for (const auto& item : *array) {
      auto value = scalar(item, element);
      if (!value) return fail();
      if (auto* i = std::get_if<int64_t>(&*value)) {
        if (!in_range(static_cast<double>(*i))) return fail();
        ints.push_back(*i);
      } else if (auto* d = std::get_if<double>(&*value)) {
        if (!in_range(*d)) return fail();
        reals.push_back(*d);
      } else {
        auto& s = std::get<std::string>(*value);
        if (!allowed(s)) return fail();
        strings.push_back(s);
      }
    }
    if (element == Type::integer) return ints;
    if (element == Type::real) return reals;
    return strings;
  }

  /// Validates `table` against `schema`; keys not in the table take their value from `base`, else the default.
  Values validate(const toml::table& table, const Schema& schema, const std::string& prefix,
                  const std::set<std::string>& also_allowed, const Values* base, const std::string& owner) {
    Values values;
    for (const auto& param : schema) {
      if (base) {
        if (auto it = base->find(param.name); it != base->end()) values[param.name] = it->second;
      }
      if (!values.count(param.name)) values[param.name] = param.default_value;
    }
    std::vector<std::string> valid;
    for (const auto& param : schema) valid.push_back(param.name);
    for (const auto& key : also_allowed) {
      if (key != "model") valid.push_back(key);  // skipped here, but rejected on its own
    }
    for (auto&& [k, node] : table) {
      const std::string key(k.str());
      if (also_allowed.count(key)) continue;
      auto param = std::find_if(schema.begin(), schema.end(), [&](const Param& p) { return p.name == key; });
      if (param == schema.end()) {
        std::string message = "unknown key for " + owner;
        if (auto guess = closest(key, valid); !guess.empty()) message += "; did you mean '" + guess + "'?";
        std::string list;
        for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
        // Keys set on the command line have no position of their own; their value does.
        problem(k.source().path ? &k.source() : &node.source(), prefix + key, message + " (valid keys: " + list + ")");
        continue;
      }
      if (auto value = convert(node, *param, prefix + key)) values[key] = std::move(*value);
    }
    return values;
  }

  /// A component table: `use` picks the component, the other keys are its parameters.
  std::optional<ComponentSpec> component(const toml::node* node, Kind kind, const std::string& table_name,
                                         const std::string& default_use, const ComponentSpec* inherited) {
    const std::string kind_text(kind_name(kind));
    if (!node) {
      if (inherited) return *inherited;
      if (default_use.empty()) {
        problems.push_back(root_file_ + ": missing [" + table_name + "] table (which " + kind_text + " to use)");
        return std::nullopt;
      }
      static const toml::table empty;
      node = &empty;
    }
    const auto* table = node->as_table();
    if (!table) {
      problem(node, table_name, "expected a table with use = \"<" + kind_text + " name>\", got " + got(*node));
      return std::nullopt;
    }
    std::string use = inherited ? inherited->use : default_use;
    const toml::node* use_node = table->get("use");
    if (use_node) {
      if (!use_node->is_string()) {
        problem(use_node, table_name + ".use", "expected the name of a " + kind_text + ", got " + got(*use_node));
        return std::nullopt;
      }
      use = use_node->as_string()->get();
    }
    if (use.empty()) {
      problem(node, table_name + ".use", "missing: which " + kind_text + " to use (" + available(kind) + ")");
      return std::nullopt;
    }
    const LoadedComponent* found = registry_.find(kind, use);
    if (!found) {
      std::string message = "unknown " + kind_text + " '" + use + "'";
      if (auto guess = closest(use, registry_.names(kind)); !guess.empty()) message += "; did you mean '" + guess + "'?";
      problem(use_node ? use_node : node, table_name + ".use", message + " (" + available(kind) + ")");
      return std::nullopt;
    }
    const bool same = inherited && inherited->use == use;
    const bool grouped = kind == Kind::optimizer || kind == Kind::precision;
    ComponentSpec spec{kind, use, {}, table_name, {}};
    spec.values = validate(*table, found->info.schema, table_name + ".", grouped ? std::set<std::string>{"use", "groups"}
                                                                               : std::set<std::string>{"use"},
                           same ? &inherited->values : nullptr, kind_text + " '" + use + "'");
    if (same) spec.group_overrides = inherited->group_overrides;
    if (const toml::node* groups = grouped ? table->get("groups") : nullptr) {
      spec.group_overrides.clear();
      if (!groups->is_table()) {
        problem(groups, table_name + ".groups", "expected tables [" + table_name + ".groups.<parameter group>]");
      } else {
        for (auto&& [name, group] : *groups->as_table()) {
          const std::string where = table_name + ".groups." + std::string(name.str());
          if (!group.is_table()) {
            problem(&group, where, "expected a table of " + kind_text + " parameters for this parameter group");
            continue;
          }
          Values all = validate(*group.as_table(), found->info.schema, where + ".", {}, nullptr,
                                kind_text + " '" + use + "' (per-group)");
          Values set;  // only what the group table sets; the rest follows the component's values
          for (auto&& [key, node] : *group.as_table()) {
            if (auto it = all.find(key.str()); it != all.end()) set[it->first] = it->second;
          }
          spec.group_overrides[std::string(name.str())] = std::move(set);
        }
      }
    }
    return spec;
  }

  std::string available(Kind kind) const {
    std::string list;
    for (const auto& name : registry_.names(kind)) list += (list.empty() ? "" : ", ") + name;
    return list.empty() ? "no " + std::string(kind_name(kind)) + " plugins found" : "available: " + list;
  }

  std::vector<ComponentSpec> analyzers(const toml::node* node, const std::string& table_name) {
    std::vector<ComponentSpec> out;
    if (!node) return out;
    const auto* array = node->as_array();
    if (!array) {
      problem(node, table_name, "expected an array of tables ([[" + table_name + "]] with use = \"<name>\")");
      return out;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      if (auto spec = component(array->get(i), Kind::analyzer, table_name + "[" + std::to_string(i) + "]", "", nullptr)) {
        out.push_back(std::move(*spec));
      }
    }
    return out;
  }

  const std::string& root_file() const { return root_file_; }

 private:
  const Registry& registry_;
  std::string root_file_;
};

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
                                                  "precision", "analyzers", "stages"};
  for (auto&& [k, node] : root) {
    const std::string key(k.str());
    if (kTopLevel.count(key)) continue;
    std::string message = "unknown top-level key";
    if (auto guess = closest(key, {kTopLevel.begin(), kTopLevel.end()}); !guess.empty()) {
      message += "; did you mean '" + guess + "'?";
    }
    loader.problem(&k.source(), key, message + " (valid: extends, run, task, model, optimizer, algorithm, precision, "
                                         "analyzers, stages)");
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
      if (t && o && a && p) stage.task = *t, stage.optimizer = *o, stage.algorithm = *a, stage.precision = *p;
      recipe.stages.push_back(std::move(stage));
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
                    const Registry& registry) {
  const auto* found = registry.find(spec.kind, spec.use);
  out << "\n" << header << "\n";
  emit(out, "use", spec.use, found ? found->info.doc + " (plugin " + found->plugin->name + " " + found->plugin->version + ")" : "");
  if (found) emit_values(out, spec.values, found->info.schema);
  const std::string table = header.substr(header.find_first_not_of('['), header.find(']') - header.find_first_not_of('['));
  for (const auto& [group, overrides] : spec.group_overrides) {
    out << "\n[" << table << ".groups." << group << "]\n";
    if (found) emit_values(out, overrides, found->info.schema);
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
    for (const auto& a : stage.analyzers) emit_component(out, "[[stages.analyzers]]", a, registry);
  }
  return out.str();
}

}  // namespace assay
