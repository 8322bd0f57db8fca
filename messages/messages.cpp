#include <caf/make_message.hpp>

#include "messages/errors.hpp"
#include "messages/vote.hpp"

namespace vw {

const char* to_string(verdict x) {
  switch (x) {
    case verdict::valid:
      return "valid";
    case verdict::invalid:
      return "invalid";
    case verdict::duplicate:
      return "duplicate";
    case verdict::pending:
      break;
  }
  return "pending";
}

std::string to_string(pipeline_errc x) {
  switch (x) {
    case pipeline_errc::redis_unavailable:
      return "redis_unavailable";
    case pipeline_errc::database_unavailable:
      return "database_unavailable";
    case pipeline_errc::broker_unavailable:
      return "broker_unavailable";
    case pipeline_errc::publish_not_confirmed:
      return "publish_not_confirmed";
    case pipeline_errc::shutting_down:
      return "shutting_down";
    case pipeline_errc::stage_unavailable:
      return "stage_unavailable";
    case pipeline_errc::unknown_stage:
      return "unknown_stage";
  }
  return "unknown";
}

caf::error make_error(pipeline_errc x, std::string detail) {
  return caf::error{static_cast<uint8_t>(x), pipeline_error_category,
                    caf::make_message(std::move(detail))};
}

} // namespace vw
