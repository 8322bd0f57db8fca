#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "messages/vote.hpp"

// The project's one JSON codec: input messages to `vote`, decided ballots to
// output messages and audit metadata. Wraps Boost.JSON.
namespace vw {

// Why a message is malformed: `error_type` is the metric label, `reason` the
// one-line explanation that is logged.
struct malformed {
  std::string error_type;
  std::string reason;
};

struct decode_options {
  size_t max_message_bytes = 1024;
  std::vector<std::string> pii_fields = {"nas", "code"};
};

// Decodes and checks one message body against the input contract.
// `fallback_time_us` is used when the message carries no vote timestamp.
std::variant<vote, malformed> decode_vote(std::string_view body, int64_t fallback_time_us,
                                          const decode_options& opts);

// The JSON published to the review or aggregation queue.
std::string encode_output(const ballot& b, const std::string& worker_id,
                          int64_t processed_time_us);

// The `metadata` JSONB of the audit row.
std::string encode_audit_metadata(const ballot& b, const std::string& worker_id);

// ISO-8601 parsing and formatting (UTC, microseconds).
std::optional<int64_t> parse_iso8601_us(std::string_view text);
std::string format_iso8601_us(int64_t us);

// Appends `v` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view v);

// Stable digest of a message body (FNV-1a 64, hex).
std::string fingerprint_of(std::string_view body);

} // namespace vw
