#include "infra/vote_codec.hpp"

#include <algorithm>
#include <cmath>
#include <array>
#include <cstdio>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

namespace vw {

namespace json = boost::json;

namespace {

constexpr size_t max_depth = 16;

bool valid_utf8(std::string_view s) {
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  auto end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n)
      return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
        || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

// A SAX pass that finds what the DOM parser silently accepts: duplicate keys
// at the top level (the DOM keeps the last) and NUL characters in strings
// (which PostgreSQL's jsonb refuses).
struct screening_handler {
  constexpr static std::size_t max_object_size = std::size_t(-1);
  constexpr static std::size_t max_array_size = std::size_t(-1);
  constexpr static std::size_t max_key_size = std::size_t(-1);
  constexpr static std::size_t max_string_size = std::size_t(-1);

  int depth = 0;
  std::vector<std::string> top_keys;
  std::string key;
  std::string duplicate_key;
  bool duplicate = false;
  bool nul = false;
  bool non_finite = false; // a number too large for a double (1e400)

  void check_nul(std::string_view s) {
    if (s.find('\0') != std::string_view::npos)
      nul = true;
  }
  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth;
    return true;
  }
  bool on_array_begin(json::error_code&) {
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth;
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t, json::error_code&) {
    check_nul(s);
    if (depth == 1)
      key.append(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t, json::error_code&) {
    check_nul(s);
    if (depth == 1) {
      key.append(s);
      if (!duplicate && std::find(top_keys.begin(), top_keys.end(), key) != top_keys.end()) {
        duplicate = true;
        duplicate_key = key;
      }
      top_keys.push_back(std::move(key));
      key.clear();
    }
    return true;
  }
  bool on_string_part(std::string_view s, std::size_t, json::error_code&) {
    check_nul(s);
    return true;
  }
  bool on_string(std::string_view s, std::size_t, json::error_code&) {
    check_nul(s);
    return true;
  }
  bool on_number_part(std::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, std::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, std::string_view, json::error_code&) { return true; }
  bool on_double(double d, std::string_view, json::error_code&) {
    if (!std::isfinite(d))
      non_finite = true;
    return true;
  }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(std::string_view, json::error_code&) { return true; }
  bool on_comment(std::string_view, json::error_code&) { return true; }
};

malformed bad(std::string type, std::string reason) {
  return malformed{std::move(type), std::move(reason)};
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size())
    return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

bool is_hex_hash(std::string& h) {
  if (h.size() != 64)
    return false;
  for (auto& c : h) {
    if (c >= 'A' && c <= 'F')
      c = static_cast<char>(c - 'A' + 'a');
    else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

const json::value* first_of(const json::object& obj, std::initializer_list<const char*> names,
                            const char** found) {
  for (auto* n : names)
    if (auto it = obj.find(n); it != obj.end()) {
      *found = n;
      return &it->value();
    }
  return nullptr;
}

} // namespace

std::optional<int64_t> parse_iso8601_us(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-'
      || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
      || !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':'
      || !digits(s, 17, 2, sec))
    return std::nullopt;
  static constexpr std::array<int, 12> month_days{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1]
      || (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 60 || (sec == 60 && mi != 59))
    return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    size_t start = pos;
    int64_t scale = 100000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (scale > 0) {
        micros += (s[pos] - '0') * scale;
        scale /= 10;
      }
      ++pos;
    }
    if (pos == start || pos - start > 9)
      return std::nullopt;
  }
  int64_t offset_s = 0;
  if (pos < s.size()) {
    if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
      pos = s.size();
    } else if (s[pos] == '+' || s[pos] == '-') {
      int sign = s[pos] == '-' ? -1 : 1;
      int oh, om = 0;
      if (!digits(s, pos + 1, 2, oh))
        return std::nullopt;
      size_t p = pos + 3;
      bool colon = p < s.size() && s[p] == ':';
      if (colon)
        ++p;
      if (p < s.size() || colon) {
        if (!digits(s, p, 2, om))
          return std::nullopt;
        p += 2;
      }
      if (p != s.size() || oh > 23 || om > 59)
        return std::nullopt;
      offset_s = sign * (oh * 3600 + om * 60);
      pos = p;
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size())
    return std::nullopt;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + std::min(sec, 59) - offset_s;
  // In UTC the time must still lie in 1900..9999 (what format_iso8601_us writes).
  static const int64_t earliest = days_from_civil(1900, 1, 1) * 86400;
  static const int64_t after_latest = days_from_civil(10000, 1, 1) * 86400;
  if (secs < earliest || secs >= after_latest)
    return std::nullopt;
  return secs * 1000000 + micros;
}

std::string format_iso8601_us(int64_t us) {
  int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  int64_t frac = us - secs * 1000000;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t rem = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  // YYYY-MM-DDTHH:MM:SS.ffffffZ, written digit by digit (no printf on the hot path).
  std::string out(27, '0');
  auto put = [&](size_t pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[pos + static_cast<size_t>(i)] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, y, 4);
  out[4] = '-';
  put(5, m, 2);
  out[7] = '-';
  put(8, d, 2);
  out[10] = 'T';
  put(11, rem / 3600, 2);
  out[13] = ':';
  put(14, rem / 60 % 60, 2);
  out[16] = ':';
  put(17, rem % 60, 2);
  out[19] = '.';
  put(20, frac, 6);
  out[26] = 'Z';
  return out;
}

std::string fingerprint_of(std::string_view body) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4)
    out[static_cast<size_t>(i)] = hex[h & 0xF];
  return out;
}

std::variant<vote, malformed> decode_vote(std::string_view body, int64_t fallback_time_us,
                                          const decode_options& opts) {
  if (body.size() > opts.max_message_bytes)
    return bad("oversized", "message of " + std::to_string(body.size())
                              + " bytes exceeds MAX_MESSAGE_BYTES="
                              + std::to_string(opts.max_message_bytes));
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return bad("empty_message", "message body is empty");
  if (!valid_utf8(body))
    return bad("invalid_encoding", "message body is not valid UTF-8");

  json::parse_options popts;
  popts.max_depth = max_depth;
  json::basic_parser<screening_handler> screen{popts};
  json::error_code ec;
  screen.write_some(false, body.data(), body.size(), ec);
  if (ec == json::error::too_deep)
    return bad("too_deep", "JSON nesting deeper than " + std::to_string(max_depth) + " levels");
  if (ec)
    return bad("invalid_json", "not valid JSON: " + ec.message());
  if (screen.handler().nul)
    return bad("invalid_character", "a string contains a NUL character (\\u0000)");
  if (screen.handler().non_finite)
    // Boost.JSON would write it back as Infinity, which is not JSON.
    return bad("invalid_number", "a number is too large to represent");

  // The whole document fits a stack buffer: no heap allocation for the DOM.
  unsigned char arena[8192];
  json::monotonic_resource mr{arena, sizeof(arena)};
  json::value doc = json::parse(body, ec, &mr, popts);
  if (ec)
    return bad("invalid_json", "not valid JSON: " + ec.message());
  if (!doc.is_object())
    return bad("not_an_object", std::string{"top-level JSON value is a"}
                                  + (doc.is_array() ? "n array" : " scalar")
                                  + ", expected an object");
  if (screen.handler().duplicate)
    return bad("duplicate_field", "field \"" + screen.handler().duplicate_key
                                    + "\" appears more than once");
  auto& obj = doc.as_object();

  vote v;
  const char* hash_name = nullptr;
  auto* hash = first_of(obj, {"voter_hash", "hash"}, &hash_name);
  if (hash == nullptr)
    return bad("missing_field", "voter_hash is missing");
  if (!hash->is_string())
    return bad("invalid_field", std::string{hash_name} + " must be a string");
  v.voter_hash = std::string{hash->as_string()};
  if (!is_hex_hash(v.voter_hash))
    return bad("invalid_field", std::string{hash_name} + " must be 64 hexadecimal characters");
  if (auto alias = obj.find("hash"); alias != obj.end() && hash_name[0] == 'v') {
    std::string other = alias->value().is_string() ? std::string{alias->value().as_string()} : "";
    if (!is_hex_hash(other) || other != v.voter_hash)
      return bad("invalid_field", "voter_hash and hash disagree");
  }

  auto cand = obj.find("candidate_id");
  if (cand == obj.end())
    return bad("missing_field", "candidate_id is missing");
  int64_t id = 0;
  if (cand->value().is_int64())
    id = cand->value().as_int64();
  else if (cand->value().is_uint64())
    id = -1;
  else
    return bad("invalid_field", "candidate_id must be an integer");
  if (id < 1 || id > 2147483647)
    return bad("invalid_field", "candidate_id must be between 1 and 2147483647");
  v.candidate_id = static_cast<int32_t>(id);

  const char* ts_name = nullptr;
  if (auto* ts = first_of(obj, {"vote_timestamp", "timestamp", "submitted_at"}, &ts_name)) {
    std::optional<int64_t> parsed;
    if (ts->is_string())
      parsed = parse_iso8601_us(ts->as_string());
    if (!parsed)
      return bad("invalid_field", std::string{ts_name} + " must be an ISO-8601 date and time");
    v.vote_time_us = *parsed;
  } else {
    v.vote_time_us = fallback_time_us;
  }

  json::object carried{&mr};
  for (auto& kv : obj) {
    auto k = kv.key();
    if (k == "voter_hash" || k == "hash" || k == "candidate_id" || k == "vote_timestamp"
        || k == "timestamp" || k == "submitted_at")
      continue;
    // Names the worker writes itself are not carried (ours would clash).
    if (k == "status" || k == "processed_timestamp" || k == "worker_id" || k == "reason"
        || k == "duplicate_count" || k == "attempt_count" || k == "delivery_tag"
        || k == "redelivered" || k == "fingerprint" || k == "resumed")
      continue;
    if (std::find(opts.pii_fields.begin(), opts.pii_fields.end(), k) != opts.pii_fields.end())
      continue;
    carried.emplace(k, kv.value());
  }
  v.carried_json = json::serialize(carried);
  v.fingerprint = fingerprint_of(body);
  return v;
}

void append_json_string(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xF];
          out += hex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

namespace {

// Appends fields to the carried object's text: the carried JSON was produced
// by our own serializer and holds none of the names written here.
class spliced_object {
public:
  spliced_object(std::string& out, const std::string& carried) : out_(out) {
    if (carried.size() >= 2 && carried.front() == '{' && carried.back() == '}') {
      out_.append(carried, 0, carried.size() - 1);
      first_ = carried.size() == 2;
    } else {
      out_ += '{';
    }
  }
  void text(std::string_view k, std::string_view v) {
    key(k);
    append_json_string(out_, v);
  }
  void number(std::string_view k, int64_t v) {
    key(k);
    out_ += std::to_string(v);
  }
  void boolean(std::string_view k, bool v) {
    key(k);
    out_ += v ? "true" : "false";
  }
  void finish() { out_ += '}'; }

private:
  void key(std::string_view k) {
    if (!first_)
      out_ += ',';
    first_ = false;
    out_ += '"';
    out_ += k;
    out_ += "\":";
  }
  std::string& out_;
  bool first_ = true;
};

} // namespace

std::string encode_output(const ballot& b, const std::string& worker_id,
                          int64_t processed_time_us) {
  std::string out;
  out.reserve(b.content.carried_json.size() + 320);
  spliced_object o{out, b.content.carried_json};
  o.text("voter_hash", b.content.voter_hash);
  o.number("candidate_id", b.content.candidate_id);
  o.text("vote_timestamp", format_iso8601_us(b.content.vote_time_us));
  o.text("status", to_string(b.status));
  o.text("processed_timestamp", format_iso8601_us(processed_time_us));
  o.text("worker_id", worker_id);
  if (b.status == verdict::invalid || b.status == verdict::duplicate)
    o.text("reason", b.review_reason);
  if (b.status == verdict::duplicate) {
    o.number("duplicate_count", b.duplicate_count);
    o.number("attempt_count", b.duplicate_count + 1);
  }
  o.finish();
  return out;
}

std::string encode_audit_metadata(const ballot& b, const std::string& worker_id) {
  std::string out;
  out.reserve(b.content.carried_json.size() + 200);
  spliced_object o{out, b.content.carried_json};
  o.text("worker_id", worker_id);
  o.number("delivery_tag", static_cast<int64_t>(b.delivery_tag));
  o.boolean("redelivered", b.redelivered);
  o.text("fingerprint", b.content.fingerprint);
  if (b.status == verdict::invalid || b.status == verdict::duplicate)
    o.text("reason", b.review_reason);
  if (b.status == verdict::duplicate)
    o.number("duplicate_count", b.duplicate_count);
  if (b.claim == claim_result::resumed)
    o.boolean("resumed", true);
  o.finish();
  return out;
}

} // namespace vw
