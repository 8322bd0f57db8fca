#include "infra/log.hpp"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace vw {

namespace {

std::mutex loggers_mutex;
std::shared_ptr<spdlog::sinks::sink> shared_sink;
std::string current_pattern = "%Y-%m-%dT%H:%M:%S.%e%z %-5l [%n] %v";
spdlog::level::level_enum current_level = spdlog::level::info;

void json_escape(std::string_view in, spdlog::memory_buf_t& dest) {
  for (char c : in) {
    switch (c) {
      case '"':
        dest.append(std::string_view{"\\\""});
        break;
      case '\\':
        dest.append(std::string_view{"\\\\"});
        break;
      case '\n':
        dest.append(std::string_view{"\\n"});
        break;
      case '\r':
        dest.append(std::string_view{"\\r"});
        break;
      case '\t':
        dest.append(std::string_view{"\\t"});
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          dest.append(std::string_view{buf});
        } else {
          dest.push_back(c);
        }
    }
  }
}

// %j: the message, escaped for a JSON string.
class json_message_flag : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    json_escape(std::string_view{msg.payload.data(), msg.payload.size()}, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter() {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<json_message_flag>('j').set_pattern(current_pattern);
  return f;
}

} // namespace

void setup_logging(const std::string& worker_id, const std::string& format,
                   const std::string& level) {
  std::lock_guard<std::mutex> guard{loggers_mutex};
  std::string id;
  spdlog::memory_buf_t buf;
  json_escape(worker_id, buf);
  id.assign(buf.data(), buf.size());
  if (format == "json")
    current_pattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","worker_id":")" + id
                      + R"(","stage":"%n","msg":"%j"})";
  else
    current_pattern = "%Y-%m-%dT%H:%M:%S.%e%z %-5l " + worker_id + " [%n] %v";
  current_level = spdlog::level::from_str(level);
  if (!shared_sink)
    shared_sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  shared_sink->set_formatter(make_formatter());
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(current_level); });
  auto main_logger = std::make_shared<spdlog::logger>("main", shared_sink);
  main_logger->set_level(current_level);
  main_logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(main_logger);
}

std::shared_ptr<spdlog::logger> stage_logger(const std::string& stage) {
  std::lock_guard<std::mutex> guard{loggers_mutex};
  if (auto existing = spdlog::get(stage))
    return existing;
  if (!shared_sink) {
    shared_sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    shared_sink->set_formatter(make_formatter());
  }
  auto l = std::make_shared<spdlog::logger>(stage, shared_sink);
  l->set_level(current_level);
  l->flush_on(spdlog::level::trace);
  spdlog::register_logger(l);
  return l;
}

} // namespace vw
