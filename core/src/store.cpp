#include "store.hpp"

#include <assay/log.hpp>
#include <assay/version.hpp>

#include <H5Cpp.h>
#include <ATen/ATen.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace assay {

/// Rows buffered for one series (/metrics/<name> or /analyzers/<group>/<name>).
struct RunStore::Series {
  std::vector<int64_t> steps;
  std::vector<double> wall;             // metrics only
  H5::PredType type = H5::PredType::NATIVE_DOUBLE;
  size_t element_size = sizeof(double);
  std::vector<hsize_t> row_shape;
  std::vector<char> bytes;
  bool is_metric = false;
};

namespace {

void fsync_path(const std::string& path, bool directory = false) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// H5Lexists fails on a missing intermediate group, so test each level.
bool exists(H5::H5File& file, const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    if (!file.nameExists(path.substr(0, slash))) return false;
    if (slash == std::string::npos) return true;
  }
}

H5::Group open_or_create_group(H5::H5File& file, const std::string& path) {
  if (exists(file, path)) return file.openGroup(path);
  H5::LinkCreatPropList intermediate;
  intermediate.setCreateIntermediateGroup(true);
  return file.createGroup(path, intermediate);
}

void set_string_attribute(H5::H5Object& object, const std::string& key, const std::string& value) {
  H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
  H5::DataSpace scalar(H5S_SCALAR);
  if (object.attrExists(key)) object.removeAttr(key);
  object.createAttribute(key, type, scalar).write(type, value);
}

std::string get_string_attribute(const H5::H5Object& object, const std::string& key) {
  if (!object.attrExists(key)) return "";
  H5::Attribute attribute = object.openAttribute(key);
  std::string value;
  attribute.read(attribute.getStrType(), value);
  return value;
}

/// Appends `rows` rows of `row_shape` to dataset `name` in `group`, creating it (chunked, extendible) if needed.
void append_rows(H5::Group& group, const std::string& name, const H5::PredType& type,
                 const std::vector<hsize_t>& row_shape, hsize_t rows, const void* data) {
  if (rows == 0) return;
  std::vector<hsize_t> count{rows};
  count.insert(count.end(), row_shape.begin(), row_shape.end());
  H5::DataSet dataset;
  hsize_t old_rows = 0;
  if (group.nameExists(name)) {
    dataset = group.openDataSet(name);
    std::vector<hsize_t> dims(count.size());
    dataset.getSpace().getSimpleExtentDims(dims.data());
    old_rows = dims[0];
    dims[0] += rows;
    dataset.extend(dims.data());
  } else {
    std::vector<hsize_t> max_dims(count);
    max_dims[0] = H5S_UNLIMITED;
    hsize_t row_elements = 1;
    for (auto d : row_shape) row_elements *= d;
    std::vector<hsize_t> chunk(count);
    chunk[0] = std::clamp<hsize_t>(16384 / std::max<hsize_t>(1, row_elements * type.getSize()), 1, 4096);
    H5::DSetCreatPropList properties;
    properties.setChunk(static_cast<int>(chunk.size()), chunk.data());
    std::vector<hsize_t> empty(count);
    empty[0] = 0;
    H5::DataSpace space(static_cast<int>(count.size()), empty.data(), max_dims.data());
    dataset = group.createDataSet(name, type, space, properties);
    dataset.extend(count.data());
  }
  H5::DataSpace file_space = dataset.getSpace();
  std::vector<hsize_t> start(count.size(), 0);
  start[0] = old_rows;
  file_space.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
  H5::DataSpace memory_space(static_cast<int>(count.size()), count.data());
  dataset.write(data, type, memory_space, file_space);
}

/// One /events row in memory (variable-length strings).
struct EventRow {
  int64_t step;
  const char* kind;
  const char* message;
};

H5::CompType event_type() {
  H5::StrType text(H5::PredType::C_S1, H5T_VARIABLE);
  H5::CompType type(sizeof(EventRow));
  type.insertMember("step", HOFFSET(EventRow, step), H5::PredType::NATIVE_INT64);
  type.insertMember("kind", HOFFSET(EventRow, kind), text);
  type.insertMember("message", HOFFSET(EventRow, message), text);
  return type;
}

hsize_t rows_of(const H5::DataSet& dataset) {
  H5::DataSpace space = dataset.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  return dims.empty() ? 0 : dims[0];
}

void truncate_rows(H5::DataSet& dataset, hsize_t rows) {
  H5::DataSpace space = dataset.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  if (!dims.empty() && dims[0] > rows) {
    dims[0] = rows;
    dataset.extend(dims.data());  // H5Dset_extent: shrinks too
  }
}

void append_events(H5::DataSet& dataset, const std::vector<EventRow>& rows) {
  if (rows.empty()) return;
  hsize_t old_rows = rows_of(dataset), count = rows.size(), total = old_rows + count;
  dataset.extend(&total);
  H5::DataSpace file_space = dataset.getSpace();
  file_space.selectHyperslab(H5S_SELECT_SET, &count, &old_rows);
  H5::DataSpace memory_space(1, &count);
  dataset.write(rows.data(), event_type(), memory_space, file_space);
}

/// Every group holding a `step` dataset (a series), below `group`.
void collect_series(H5::Group group, const std::string& path, std::vector<std::string>& out) {
  if (group.nameExists("step")) out.push_back(path);
  for (hsize_t i = 0; i < group.getNumObjs(); ++i) {
    std::string name = group.getObjnameByIdx(i);
    if (group.getObjTypeByIdx(i) == H5G_GROUP) collect_series(group.openGroup(name), path + "/" + name, out);
  }
}

/// Drops rows with step > last_step from every series and from /events.
void truncate_after(H5::H5File& file, int64_t last_step) {
  std::vector<std::string> series;
  for (const char* root : {"/metrics", "/analyzers"}) {
    if (file.nameExists(root)) collect_series(file.openGroup(root), root, series);
  }
  for (const auto& path : series) {
    H5::Group group = file.openGroup(path);
    H5::DataSet steps = group.openDataSet("step");
    std::vector<int64_t> values(rows_of(steps));
    if (!values.empty()) steps.read(values.data(), H5::PredType::NATIVE_INT64);
    hsize_t keep = static_cast<hsize_t>(std::upper_bound(values.begin(), values.end(), last_step) - values.begin());
    for (hsize_t i = 0; i < group.getNumObjs(); ++i) {
      if (group.getObjTypeByIdx(i) != H5G_DATASET) continue;
      H5::DataSet dataset = group.openDataSet(group.getObjnameByIdx(i));
      truncate_rows(dataset, keep);
    }
  }
  if (file.nameExists("/events")) {  // not sorted by step (e.g. several events at one step): filter, rewrite
    H5::DataSet events = file.openDataSet("/events");
    hsize_t rows = rows_of(events);
    std::vector<EventRow> all(rows), kept;
    H5::CompType type = event_type();
    if (rows) events.read(all.data(), type);
    std::copy_if(all.begin(), all.end(), std::back_inserter(kept), [&](const EventRow& e) { return e.step <= last_step; });
    truncate_rows(events, 0);
    append_events(events, kept);
    if (rows) H5::DataSet::vlenReclaim(all.data(), type, H5::DataSpace(1, &rows));
  }
}

/// Runs `edit` on a copy of `path` (or a new file) and atomically renames the copy over it.
template <class Edit>
void edit_atomically(const std::string& path, bool create, Edit&& edit) {
  const std::string temporary = path + ".tmp";
  try {
    H5::H5File file;
    if (create) {
      file = H5::H5File(temporary, H5F_ACC_TRUNC);
    } else {
      fs::copy_file(path, temporary, fs::copy_options::overwrite_existing);
      file = H5::H5File(temporary, H5F_ACC_RDWR);
    }
    edit(file);
    file.close();
  } catch (const H5::Exception& e) {  // not a std::exception
    throw std::runtime_error("run store " + path + ": " + e.getFuncName() + ": " + e.getDetailMsg());
  }
  fsync_path(temporary);
  fs::rename(temporary, path);
  fsync_path(fs::absolute(path).parent_path().string(), true);
}

class GroupRecorder : public Recorder {
 public:
  GroupRecorder(RunStore& store, std::string group) : store_(store), group_(std::move(group)) {}
  void metric(std::string_view name, int64_t step, double value) override { store_.metric(name, step, value); }
  void append(std::string_view name, int64_t step, const at::Tensor& row) override {
    store_.append(group_, name, step, row);
  }
  void describe(std::string_view name, std::string_view key, std::string_view text) override {
    store_.describe(group_, name, key, text);
  }
  void event(int64_t step, std::string_view kind, std::string_view message) override {
    store_.event(step, kind, message);
  }

 private:
  RunStore& store_;
  std::string group_;
};

void check_name(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos) {
    throw std::invalid_argument("run store: series name '" + std::string(name) + "' must be non-empty and contain no '/'");
  }
}

}  // namespace

RunStore::RunStore(std::string path) : path_(std::move(path)) {}
RunStore::~RunStore() = default;

std::unique_ptr<RunStore> RunStore::create(const std::string& path, const StoreHeader& header) {
  if (fs::exists(path)) throw std::runtime_error(path + " already exists");
  H5::Exception::dontPrint();
  std::unique_ptr<RunStore> store(new RunStore(path));
  edit_atomically(path, true, [&](H5::H5File& file) {
    H5::Group root = file.openGroup("/");
    set_string_attribute(root, "assay_version", ASSAY_VERSION);
    set_string_attribute(root, "status", "running");
    set_string_attribute(root, "created", header.env.count("time") ? header.env.at("time") : "");
    set_string_attribute(root, "finished", "");
    H5::Group recipe = file.createGroup("/recipe");
    set_string_attribute(recipe, "source", header.recipe_source);
    set_string_attribute(recipe, "resolved", header.recipe_resolved);
    set_string_attribute(recipe, "overrides", header.overrides);
    H5::Group env = file.createGroup("/env");
    for (const auto& [key, value] : header.env) set_string_attribute(env, key, value);
    file.createGroup("/metrics");
    file.createGroup("/analyzers");
  });
  return store;
}

std::unique_ptr<RunStore> RunStore::discarding() { return std::unique_ptr<RunStore>(new RunStore("")); }

std::unique_ptr<RunStore> RunStore::append_to(const std::string& path) {
  if (!fs::exists(path)) throw std::runtime_error(path + " does not exist");
  H5::Exception::dontPrint();
  return std::unique_ptr<RunStore>(new RunStore(path));
}

std::unique_ptr<RunStore> RunStore::resume(const std::string& path, int64_t last_step, const StoreHeader& header) {
  if (!fs::exists(path)) throw std::runtime_error(path + " does not exist: nothing to resume");
  H5::Exception::dontPrint();
  std::unique_ptr<RunStore> store(new RunStore(path));
  edit_atomically(path, false, [&](H5::H5File& file) {
    truncate_after(file, last_step);
    H5::Group root = file.openGroup("/");
    set_string_attribute(root, "status", "running");
    set_string_attribute(root, "finished", "");
    H5::Group env = file.openGroup("/env");
    for (const auto& [key, value] : header.env) {
      if (key != "time") set_string_attribute(env, key, value);
    }
    set_string_attribute(env, "resumed", header.env.count("time") ? header.env.at("time") : "");
    // A run may be resumed with a changed recipe (say, more steps): keep both, and say so.
    H5::Group recipe = file.openGroup("/recipe");
    if (get_string_attribute(recipe, "resolved") != header.recipe_resolved) {
      set_string_attribute(recipe, "resolved_on_resume", header.recipe_resolved);
      set_string_attribute(recipe, "overrides_on_resume", header.overrides);
      log::warn("the recipe differs from the one this run started with; both are in ", path, " /recipe");
    }
  });
  return store;
}

void RunStore::metric(std::string_view name, int64_t step, double value) {
  check_name(name);
  std::lock_guard lock(mutex_);
  auto& series = pending_["/metrics/" + std::string(name)];
  if (!series) {
    series = std::make_unique<Series>();
    series->is_metric = true;
  }
  series->steps.push_back(step);
  series->wall.push_back(wall());
  const char* bytes = reinterpret_cast<const char*>(&value);
  series->bytes.insert(series->bytes.end(), bytes, bytes + sizeof value);
}

void RunStore::append(std::string_view group, std::string_view name, int64_t step, const at::Tensor& row) {
  check_name(name);
  at::Tensor data = row.detach().to(at::kCPU);
  H5::PredType type = H5::PredType::NATIVE_DOUBLE;
  if (data.scalar_type() == at::kFloat) {
    type = H5::PredType::NATIVE_FLOAT;
  } else if (data.scalar_type() == at::kLong) {
    type = H5::PredType::NATIVE_INT64;
  } else {
    data = data.to(at::kDouble);
  }
  data = data.contiguous();
  std::vector<hsize_t> shape(data.sizes().begin(), data.sizes().end());
  std::lock_guard lock(mutex_);
  auto& series = pending_["/analyzers/" + std::string(group) + "/" + std::string(name)];
  if (!series) {
    series = std::make_unique<Series>();
    series->type = type;
    series->element_size = data.element_size();
    series->row_shape = shape;
  } else if (series->row_shape != shape || !(series->type == type)) {
    throw std::invalid_argument("run store: rows of " + std::string(group) + "/" + std::string(name) +
                                " must keep one shape and dtype");
  }
  series->steps.push_back(step);
  const char* bytes = static_cast<const char*>(data.data_ptr());
  series->bytes.insert(series->bytes.end(), bytes, bytes + data.numel() * data.element_size());
}

void RunStore::describe(std::string_view group, std::string_view name, std::string_view key, std::string_view text) {
  std::lock_guard lock(mutex_);
  dataset_attributes_["/analyzers/" + std::string(group) + "/" + std::string(name)][std::string(key)] = text;
}

void RunStore::event(int64_t step, std::string_view kind, std::string_view message) {
  std::lock_guard lock(mutex_);
  events_.push_back({step, std::string(kind), std::string(message)});
}

void RunStore::attribute(std::string_view key, std::string_view value) {
  std::lock_guard lock(mutex_);
  root_attributes_[std::string(key)] = value;
}

Recorder& RunStore::recorder(const std::string& group) {
  auto& slot = recorders_[group];
  if (!slot) slot = std::make_unique<GroupRecorder>(*this, group);
  return *slot;
}

double RunStore::wall() const {
  return wall_offset_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RunStore::flush() {
  std::lock_guard lock(mutex_);
  const bool rows = std::any_of(pending_.begin(), pending_.end(), [](auto& s) { return !s.second->steps.empty(); });
  if (!rows && events_.empty() && root_attributes_.empty() && dataset_attributes_.empty()) return;
  if (!path_.empty()) edit_atomically(path_, false, [&](H5::H5File& file) {
    for (auto& [path, series] : pending_) {
      const hsize_t rows = series->steps.size();
      if (rows == 0) continue;
      H5::Group group = open_or_create_group(file, path);
      append_rows(group, "step", H5::PredType::NATIVE_INT64, {}, rows, series->steps.data());
      append_rows(group, "value", series->type, series->row_shape, rows, series->bytes.data());
      if (series->is_metric) append_rows(group, "wall", H5::PredType::NATIVE_DOUBLE, {}, rows, series->wall.data());
    }
    for (auto& [path, attributes] : dataset_attributes_) {
      H5::Group group = open_or_create_group(file, path);
      for (const auto& [key, text] : attributes) set_string_attribute(group, key, text);
    }
    if (!events_.empty()) {
      std::vector<EventRow> rows;
      for (const auto& e : events_) rows.push_back({e.step, e.kind.c_str(), e.message.c_str()});
      H5::DataSet dataset;
      if (file.nameExists("/events")) {
        dataset = file.openDataSet("/events");
      } else {
        hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 256;
        H5::DSetCreatPropList properties;
        properties.setChunk(1, &chunk);
        H5::DataSpace space(1, &zero, &unlimited);
        dataset = file.createDataSet("/events", event_type(), space, properties);
      }
      append_events(dataset, rows);
    }
    H5::Group root = file.openGroup("/");
    for (const auto& [key, value] : root_attributes_) set_string_attribute(root, key, value);
  });
  for (auto& [path, series] : pending_) {  // keep each series' layout, so shape checks span flushes
    series->steps.clear();
    series->wall.clear();
    series->bytes.clear();
  }
  events_.clear();
  root_attributes_.clear();
  dataset_attributes_.clear();
}

static std::string summarize(H5::H5File& file, const std::string& path, int max_events);

/// Opens a store for reading; HDF5 failures become std::runtime_error.
template <class Read>
auto read_store(const std::string& path, Read&& read) {
  H5::Exception::dontPrint();
  try {
    H5::H5File file(path, H5F_ACC_RDONLY);
    return read(file);
  } catch (const H5::Exception& e) {
    throw std::runtime_error(path + ": " + e.getFuncName() + ": " + e.getDetailMsg());
  }
}

StoreSummary summarize_store(const std::string& path) {
  return read_store(path, [&](H5::H5File& file) {
    StoreSummary summary;
    H5::Group root = file.openGroup("/");
    summary.status = get_string_attribute(root, "status");
    const std::string total = get_string_attribute(root, "total_steps");
    summary.total_steps = total.empty() ? 0 : std::stoll(total);
    if (exists(file, "/metrics/train.loss/step")) {
      H5::DataSet steps = file.openDataSet("/metrics/train.loss/step");
      hsize_t rows = rows_of(steps);
      if (rows) {
        std::vector<int64_t> all(rows);
        steps.read(all.data(), H5::PredType::NATIVE_INT64);
        summary.last_step = all.back();
      }
    }
    if (file.nameExists("/events")) {
      H5::DataSet events = file.openDataSet("/events");
      hsize_t rows = rows_of(events);
      std::vector<EventRow> all(rows);
      H5::CompType type = event_type();
      if (rows) events.read(all.data(), type);
      for (const auto& e : all) {
        if (std::string(e.kind) == "error" || std::string(e.kind) == "diverged") summary.error = e.message;
      }
      if (rows) H5::DataSet::vlenReclaim(all.data(), type, H5::DataSpace(1, &rows));
    }
    return summary;
  });
}

std::string read_store_attribute(const std::string& path, const std::string& key) {
  return read_store(path, [&](H5::H5File& file) { return get_string_attribute(file.openGroup("/"), key); });
}

std::string inspect_store(const std::string& path, int max_events) {
  return read_store(path, [&](H5::H5File& file) { return summarize(file, path, max_events); });
}

static std::string summarize(H5::H5File& file, const std::string& path, int max_events) {
  H5::Group root = file.openGroup("/");
  std::ostringstream out;
  out << path << "\n  status   " << get_string_attribute(root, "status") << "\n  created  "
      << get_string_attribute(root, "created") << "\n  finished " << get_string_attribute(root, "finished") << "\n";
  if (file.nameExists("/env")) {
    H5::Group env = file.openGroup("/env");
    out << "  assay " << get_string_attribute(root, "assay_version") << ", torch " << get_string_attribute(env, "torch_version")
        << ", device " << get_string_attribute(env, "device") << ", git " << get_string_attribute(env, "git_commit") << "\n";
  }
  std::vector<std::string> series;
  for (const char* top : {"/metrics", "/analyzers"}) {
    if (file.nameExists(top)) collect_series(file.openGroup(top), top, series);
  }
  out << "  series (last value):\n";
  for (const auto& s : series) {
    H5::Group group = file.openGroup(s);
    H5::DataSet steps = group.openDataSet("step");
    hsize_t rows = rows_of(steps);
    out << "    " << s << "  rows " << rows;
    if (rows > 0) {
      std::vector<int64_t> all(rows);
      steps.read(all.data(), H5::PredType::NATIVE_INT64);
      out << ", last step " << all.back();
      H5::DataSet value = group.openDataSet("value");
      H5::DataSpace space = value.getSpace();
      if (space.getSimpleExtentNdims() == 1) {
        std::vector<double> values(rows);
        value.read(values.data(), H5::PredType::NATIVE_DOUBLE);
        out << ": " << values.back();
      } else {
        std::vector<hsize_t> dims(space.getSimpleExtentNdims());
        space.getSimpleExtentDims(dims.data());
        out << ", row shape [";
        for (size_t i = 1; i < dims.size(); ++i) out << (i > 1 ? ", " : "") << dims[i];
        out << "]";
      }
    }
    out << "\n";
  }
  if (file.nameExists("/events")) {
    H5::DataSet events = file.openDataSet("/events");
    hsize_t rows = rows_of(events);
    std::vector<EventRow> all(rows);
    H5::CompType type = event_type();
    if (rows) events.read(all.data(), type);
    out << "  events (" << rows << "):\n";
    for (hsize_t i = rows > static_cast<hsize_t>(max_events) ? rows - max_events : 0; i < rows; ++i) {
      out << "    step " << all[i].step << "  " << all[i].kind << "  " << all[i].message << "\n";
    }
    if (rows) H5::DataSet::vlenReclaim(all.data(), type, H5::DataSpace(1, &rows));
  }
  return out.str();
}

}  // namespace assay
