#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

// Operator-facing logs on stdout: one line per event, with the worker id and
// the stage that speaks. LOG_FORMAT=text|json, LOG_LEVEL.
namespace vw {

void setup_logging(const std::string& worker_id, const std::string& format,
                   const std::string& level);

// The logger of one stage ("consumer", "dedup", ...).
std::shared_ptr<spdlog::logger> stage_logger(const std::string& stage);

} // namespace vw
