// libFuzzer target for the vote message codec (infra/vote_codec.cpp).
//
// Feeds every input to decode_vote() twice (MAX_MESSAGE_BYTES = 1024 and a
// large limit) and, for every accepted vote, checks what the message contract
// in README.md promises: a 64 lower-case hex voter hash, a candidate id in
// 1 .. 2^31-1, carried fields that are a JSON object without PII or reserved
// names, a 16 hex fingerprint, output messages and audit metadata that are
// JSON objects without duplicate keys and with the right values, and a vote
// timestamp that survives format_iso8601_us -> parse_iso8601_us. It also
// feeds the raw input to parse_iso8601_us().
//
// A broken invariant prints "INVARIANT <name>: ..." to stderr and calls
// __builtin_trap(), which libFuzzer reports as a crash (artifact saved).
//
// VOTE_FUZZ_IGNORE=name1,name2 (environment) turns named invariants into
// warnings printed once each, so a long run can look past an already known
// finding. Default: every invariant is fatal. Names: see the fail() calls.
//
// Build and run: tests/fuzz/run.sh [SECONDS].
// tests/fuzz/findings/ holds one input per invariant the codec broke when
// this target was written (not seeds: each one stops the fuzzer). Replay:
//   build-fuzz/vote_codec_fuzzer tests/fuzz/findings/<file>
// (pass files, not the directory: libFuzzer writes into a corpus directory).
// Once fixed, move them into corpus/ as regression seeds.
//
// messages/messages.cpp (CAF headers) compiles with clang 14 and is linked for
// vw::to_string(verdict); no local stand-in is needed.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp> // basic_parser<duplicate_key_finder>

#include "infra/vote_codec.hpp"
#include "messages/vote.hpp"

namespace json = boost::json;
using namespace std::literals;

namespace {

// --- failure reporting -----------------------------------------------------

std::set<std::string> ignored;   // from VOTE_FUZZ_IGNORE
std::set<std::string> warned;    // ignored names already reported once

std::string printable(std::string_view s, size_t max = 300) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max)
    out += "...";
  return out;
}

// Returns normally only when `name` is in VOTE_FUZZ_IGNORE.
void fail(const char* name, std::string_view body, const std::string& detail) {
  if (ignored.count(name)) {
    if (warned.insert(name).second)
      std::fprintf(stderr, "IGNORED INVARIANT %s (first hit): %s\n  input: \"%s\"\n", name,
                   detail.c_str(), printable(body).c_str());
    return;
  }
  std::fprintf(stderr, "\nINVARIANT %s broken: %s\n  input (%zu bytes): \"%s\"\n", name,
               detail.c_str(), body.size(), printable(body).c_str());
  std::fflush(stderr);
  __builtin_trap();
}

// --- JSON helpers ------------------------------------------------------------

// A SAX handler that finds a key repeated within one object, at any depth.
struct duplicate_key_finder {
  constexpr static std::size_t max_object_size = std::size_t(-1);
  constexpr static std::size_t max_array_size = std::size_t(-1);
  constexpr static std::size_t max_key_size = std::size_t(-1);
  constexpr static std::size_t max_string_size = std::size_t(-1);

  struct level {
    bool object;
    std::vector<std::string> keys;
  };
  std::vector<level> stack;
  std::string key;
  std::string duplicate;
  bool found = false;
  size_t top_level_keys = 0;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    stack.push_back({true, {}});
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    stack.pop_back();
    return true;
  }
  bool on_array_begin(json::error_code&) {
    stack.push_back({false, {}});
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    stack.pop_back();
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t, json::error_code&) {
    key.append(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t, json::error_code&) {
    key.append(s);
    auto& keys = stack.back().keys;
    for (auto& k : keys)
      if (k == key && !found) {
        found = true;
        duplicate = key;
      }
    if (stack.size() == 1)
      ++top_level_keys;
    keys.push_back(std::move(key));
    key.clear();
    return true;
  }
  bool on_string_part(std::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(std::string_view, std::size_t, json::error_code&) { return true; }
  bool on_number_part(std::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, std::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, std::string_view, json::error_code&) { return true; }
  bool on_double(double, std::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(std::string_view, json::error_code&) { return true; }
  bool on_comment(std::string_view, json::error_code&) { return true; }
};

// Parses `text` as one JSON object (strict: no trailing data), or returns
// nullopt-like empty value with `why` set.
bool parse_object(std::string_view text, json::object& out, std::string& why) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    why = "not JSON: " + ec.message();
    return false;
  }
  if (!v.is_object()) {
    why = "not a JSON object";
    return false;
  }
  out = std::move(v.as_object());
  return true;
}

// The key of the first duplicate within any object of `text`, or "".
bool has_duplicate_key(std::string_view text, std::string& which) {
  json::basic_parser<duplicate_key_finder> p{json::parse_options{}};
  json::error_code ec;
  p.write_some(false, text.data(), text.size(), ec);
  if (ec)
    return false; // parse_object reports syntax errors
  which = p.handler().duplicate;
  return p.handler().found;
}

bool contains_nul(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return v.get_string().find('\0') != json::string::npos;
    case json::kind::array:
      for (auto& e : v.get_array())
        if (contains_nul(e))
          return true;
      return false;
    case json::kind::object:
      for (auto& kv : v.get_object())
        if (kv.key().find('\0') != std::string_view::npos || contains_nul(kv.value()))
          return true;
      return false;
    default:
      return false;
  }
}

// JSON equality, except that doubles may differ in the last bits: Boost.JSON
// 1.81 parses numbers imprecisely (a double serialised and parsed again can
// move by an ulp), which is the library's documented behaviour, not the
// codec's.
bool same_json(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    double x = a.get_double(), y = b.get_double();
    return x == y || std::fabs(x - y) <= 1e-15 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind())
    return false;
  if (a.is_array()) {
    auto& x = a.get_array();
    auto& y = b.get_array();
    if (x.size() != y.size())
      return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!same_json(x[i], y[i]))
        return false;
    return true;
  }
  if (a.is_object()) {
    auto& x = a.get_object();
    auto& y = b.get_object();
    if (x.size() != y.size())
      return false;
    for (auto& kv : x) {
      auto* other = y.if_contains(kv.key());
      if (!other || !same_json(kv.value(), *other))
        return false;
    }
    return true;
  }
  return a == b;
}

bool is_hex(std::string_view s, bool lower_only) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
          || (!lower_only && c >= 'A' && c <= 'F')))
      return false;
  return true;
}

// Names that never appear in carried_json: the PII defaults, the input's own
// fields and the names the worker writes itself.
constexpr std::string_view pii_names[] = {"nas", "code"};
constexpr std::string_view reserved_names[] = {
    "voter_hash",   "hash",          "candidate_id",        "vote_timestamp",
    "timestamp",    "submitted_at",  "status",              "processed_timestamp",
    "worker_id",    "reason",        "duplicate_count",     "attempt_count",
    "delivery_tag", "redelivered",   "fingerprint",         "resumed",
};

const std::set<std::string> error_types = {
    "oversized",         "empty_message", "invalid_encoding", "invalid_json",  "too_deep",
    "invalid_character", "not_an_object", "duplicate_field",  "missing_field", "invalid_field",
    "invalid_number",
};

constexpr int64_t fallback_a = 1'793'520'000'000'000;     // 2026-11-01T08:00:00Z
constexpr int64_t fallback_b = 946'684'800'123'456;       // 2000-01-01T00:00:00.123456Z
constexpr int64_t processed_us = 1'793'520'001'500'000;
const std::string worker_id = "worker-\"1\"\\\n\x01-w\xc3\xb6rker"; // needs escaping
const std::string review_reason = "already counted \"twice\"\t\\";

// --- checks ----------------------------------------------------------------

void check_time_roundtrip(std::string_view body, int64_t us, const char* name) {
  std::string text = vw::format_iso8601_us(us);
  auto back = vw::parse_iso8601_us(text);
  if (!back || *back != us)
    fail(name, body,
         "format_iso8601_us(" + std::to_string(us) + ") = \"" + text
           + "\" parses back to " + (back ? std::to_string(*back) : "nothing"s));
}

// Checks one encoded document (output message or audit metadata).
void check_encoded(std::string_view body, const char* what, const std::string& text,
                   const json::object& carried, json::object& out) {
  std::string why;
  if (!parse_object(text, out, why)) {
    fail("encoded_json", body, std::string{what} + " is " + why + ": " + printable(text));
    out = {};
    return;
  }
  std::string dup;
  if (has_duplicate_key(text, dup))
    fail("encoded_duplicate_key", body,
         std::string{what} + " repeats key \"" + dup + "\": " + printable(text));
  for (auto& kv : carried) {
    auto it = out.find(kv.key());
    if (it == out.end() || !same_json(it->value(), kv.value()))
      fail("encoded_carried", body,
           std::string{what} + " lost or changed carried field \"" + std::string{kv.key()}
             + "\": " + printable(text));
  }
}

void expect_string(std::string_view body, const char* what, const json::object& o,
                   std::string_view key, std::string_view want) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string() || it->value().get_string() != want)
    fail("encoded_field", body,
         std::string{what} + ": field \"" + std::string{key} + "\" is not \""
           + printable(want) + "\"");
}

void expect_int(std::string_view body, const char* what, const json::object& o,
                std::string_view key, int64_t want) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_int64() || it->value().get_int64() != want)
    fail("encoded_field", body,
         std::string{what} + ": field \"" + std::string{key} + "\" is not "
           + std::to_string(want));
}

void check_vote(std::string_view body, const vw::vote& v, int64_t fallback) {
  // voter_hash: 64 lower-case hex.
  if (v.voter_hash.size() != 64 || !is_hex(v.voter_hash, true))
    fail("voter_hash", body, "voter_hash \"" + printable(v.voter_hash) + "\"");
  // candidate_id: 1 .. 2^31-1.
  if (v.candidate_id < 1 || v.candidate_id > 2147483647)
    fail("candidate_id", body, "candidate_id " + std::to_string(v.candidate_id));
  // fingerprint: 16 hex, the digest of this body.
  if (v.fingerprint.size() != 16 || !is_hex(v.fingerprint, true)
      || v.fingerprint != vw::fingerprint_of(body))
    fail("fingerprint", body, "fingerprint \"" + printable(v.fingerprint) + "\"");
  // The vote time survives formatting (it is written to the output message).
  check_time_roundtrip(body, v.vote_time_us, "vote_time_roundtrip");

  // carried_json: an object without PII, reserved names or NUL characters.
  json::object carried;
  std::string why;
  bool carried_ok = parse_object(v.carried_json, carried, why);
  if (!carried_ok) {
    fail("carried_json", body, "carried_json is " + why + ": " + printable(v.carried_json));
    return; // (only when ignored) the encoders splice that text: nothing more to check
  } else {
    for (auto n : pii_names)
      if (carried.contains(n))
        fail("carried_pii", body, "carried_json holds PII field \"" + std::string{n} + "\"");
    for (auto n : reserved_names)
      if (carried.contains(n))
        fail("carried_reserved", body,
             "carried_json holds reserved field \"" + std::string{n} + "\"");
    if (contains_nul(carried))
      fail("carried_nul", body, "carried_json holds a NUL character");
  }

  // Oracle: the body, parsed independently, gives the same hash, candidate,
  // time and carried fields.
  json::object in;
  if (!parse_object(body, in, why)) {
    fail("accepted_not_json", body, "decode_vote accepted a body that is " + why);
  } else {
    std::string dup;
    if (has_duplicate_key(body, dup)) {
      // Only the top level is screened by the contract; nested duplicates are
      // collapsed by the parser. Check the top level ourselves.
      json::basic_parser<duplicate_key_finder> p{json::parse_options{}};
      json::error_code ec;
      p.write_some(false, body.data(), body.size(), ec);
      if (p.handler().top_level_keys != in.size())
        fail("accepted_duplicate", body, "decode_vote accepted a repeated top-level key");
    }
    const json::value* h = in.if_contains("voter_hash");
    if (!h)
      h = in.if_contains("hash");
    std::string want_hash = h && h->is_string() ? std::string{h->get_string()} : "";
    for (auto& c : want_hash)
      if (c >= 'A' && c <= 'F')
        c = static_cast<char>(c - 'A' + 'a');
    if (want_hash != v.voter_hash)
      fail("oracle_hash", body, "voter_hash differs from the body's");
    auto* cid = in.if_contains("candidate_id");
    if (!cid || !cid->is_int64() || cid->get_int64() != v.candidate_id)
      fail("oracle_candidate", body, "candidate_id differs from the body's");
    const json::value* ts = in.if_contains("vote_timestamp");
    if (!ts)
      ts = in.if_contains("timestamp");
    if (!ts)
      ts = in.if_contains("submitted_at");
    if (!ts) {
      if (v.vote_time_us != fallback)
        fail("oracle_time", body, "no timestamp in the body but vote_time_us is not the fallback");
    } else {
      auto t = ts->is_string() ? vw::parse_iso8601_us(ts->get_string()) : std::nullopt;
      if (!t || *t != v.vote_time_us)
        fail("oracle_time", body, "vote_time_us differs from the body's timestamp");
    }
    if (carried_ok) {
      json::object want = in;
      for (auto n : pii_names)
        want.erase(n);
      for (auto n : reserved_names)
        want.erase(n);
      if (!same_json(json::value(want), json::value(carried)))
        fail("oracle_carried", body,
             "carried_json " + printable(v.carried_json) + " != expected "
               + printable(json::serialize(want)));
    }
  }

  // encode_output / encode_audit_metadata for a valid and a duplicate ballot.
  vw::ballot b;
  b.content = v;
  b.delivery_tag = 42;
  b.redelivered = true;
  b.status = vw::verdict::valid;
  b.claim = vw::claim_result::fresh;
  const std::string want_time = vw::format_iso8601_us(v.vote_time_us);
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      b.status = vw::verdict::duplicate;
      b.claim = vw::claim_result::resumed;
      b.duplicate_count = 3;
      b.review_reason = review_reason;
    }
    const char* status = round == 0 ? "valid" : "duplicate";
    json::object out;
    check_encoded(body, "encode_output", vw::encode_output(b, worker_id, processed_us),
                  carried, out);
    if (!out.empty()) {
      expect_string(body, "encode_output", out, "voter_hash", v.voter_hash);
      expect_int(body, "encode_output", out, "candidate_id", v.candidate_id);
      expect_string(body, "encode_output", out, "status", status);
      expect_string(body, "encode_output", out, "vote_timestamp", want_time);
      expect_string(body, "encode_output", out, "worker_id", worker_id);
      if (round == 1) {
        expect_string(body, "encode_output", out, "reason", review_reason);
        expect_int(body, "encode_output", out, "duplicate_count", 3);
        expect_int(body, "encode_output", out, "attempt_count", 4);
      }
      // Re-serialising is stable (up to Boost's imprecise double parsing).
      std::string once = json::serialize(out);
      json::error_code ec;
      json::value again = json::parse(once, ec);
      if (ec || !same_json(again, json::value(out)))
        fail("encoded_unstable", body,
             "encode_output does not re-serialise stably: " + printable(once));
    }
    json::object meta;
    check_encoded(body, "encode_audit_metadata", vw::encode_audit_metadata(b, worker_id),
                  carried, meta);
    if (!meta.empty()) {
      expect_string(body, "encode_audit_metadata", meta, "worker_id", worker_id);
      expect_string(body, "encode_audit_metadata", meta, "fingerprint", v.fingerprint);
      expect_int(body, "encode_audit_metadata", meta, "delivery_tag", 42);
    }
  }
}

void check_malformed(std::string_view body, const vw::malformed& m) {
  if (!error_types.count(m.error_type) || m.reason.empty())
    fail("error_type", body,
         "malformed{\"" + printable(m.error_type) + "\", \"" + printable(m.reason) + "\"}");
}

bool same_vote(const vw::vote& a, const vw::vote& b) {
  return a.voter_hash == b.voter_hash && a.candidate_id == b.candidate_id
         && a.carried_json == b.carried_json && a.fingerprint == b.fingerprint;
}

// parse_iso8601_us on arbitrary text: no crash, and what it accepts formats
// back to the same instant.
void fuzz_iso8601(std::string_view text) {
  if (auto us = vw::parse_iso8601_us(text))
    check_time_roundtrip(text, *us, "iso8601_roundtrip");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* env = std::getenv("VOTE_FUZZ_IGNORE")) {
    std::string_view s{env};
    while (!s.empty()) {
      auto comma = s.find(',');
      auto name = s.substr(0, comma);
      if (!name.empty())
        ignored.emplace(name);
      s = comma == std::string_view::npos ? ""sv : s.substr(comma + 1);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body{reinterpret_cast<const char*>(data), size};

  fuzz_iso8601(body);

  vw::decode_options small;
  small.max_message_bytes = 1024;
  vw::decode_options large;
  large.max_message_bytes = 1 << 20;

  auto r_small = vw::decode_vote(body, fallback_a, small);
  auto r_large = vw::decode_vote(body, fallback_b, large);

  if (auto* m = std::get_if<vw::malformed>(&r_small))
    check_malformed(body, *m);
  else
    check_vote(body, std::get<vw::vote>(r_small), fallback_a);
  if (auto* m = std::get_if<vw::malformed>(&r_large))
    check_malformed(body, *m);
  else
    check_vote(body, std::get<vw::vote>(r_large), fallback_b);

  // The size limit is the only difference between the two decodes.
  if (size > small.max_message_bytes) {
    auto* m = std::get_if<vw::malformed>(&r_small);
    if (!m || m->error_type != "oversized")
      fail("size_limit", body, "a body over the limit was not rejected as oversized");
  } else if (r_small.index() != r_large.index()) {
    fail("limit_consistency", body, "the two limits disagree on a body under both");
  } else if (auto* m = std::get_if<vw::malformed>(&r_small)) {
    if (m->error_type != std::get<vw::malformed>(r_large).error_type)
      fail("limit_consistency", body, "the two limits give different error types");
  } else if (!same_vote(std::get<vw::vote>(r_small), std::get<vw::vote>(r_large))) {
    fail("limit_consistency", body, "the two limits decode different votes");
  }
  return 0;
}
