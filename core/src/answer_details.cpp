#include <assay/answer_details.hpp>

#include <stdexcept>
#include <string>

namespace assay {

AnswerDetails::~AnswerDetails() = default;

AnswerDetails& answer_details_task(const Context& context, std::string_view component) {
  auto* task = context.task ? dynamic_cast<AnswerDetails*>(context.task) : nullptr;
  if (!task) {
    throw std::invalid_argument(std::string(component) + " needs a task that details its verdicts (one implementing "
                                "assay::AnswerDetails, assay/answer_details.hpp, e.g. math_formats or solution_tree)");
  }
  return *task;
}

}  // namespace assay
