#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace vw {

// Why a stage could not finish a batch. The consumer NACKs (requeue) the
// batch for every one of them: none of them is the vote's fault.
enum class pipeline_errc : uint8_t {
  redis_unavailable = 1,
  database_unavailable,
  broker_unavailable,
  publish_not_confirmed,
  shutting_down,
  stage_unavailable, // a remote stage's node is not connected (or was lost)
  unknown_stage,     // a node was asked for a stage it does not serve
};

std::string to_string(pipeline_errc x);

inline constexpr caf::atom_value pipeline_error_category = caf::atom("pipeline");

caf::error make_error(pipeline_errc x, std::string detail);

inline caf::error make_error(pipeline_errc x) {
  return caf::error{static_cast<uint8_t>(x), pipeline_error_category};
}

} // namespace vw
