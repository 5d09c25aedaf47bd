#include <assay/components.hpp>

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

std::vector<ParamGroup> Model::param_groups() {
  ParamGroup all{"all", {}};
  for (auto& p : parameters()) all.params.push_back(p);
  return {all};
}

}  // namespace assay
