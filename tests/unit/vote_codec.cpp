#define CAF_SUITE vote_codec
#include <caf/test/unit_test.hpp>

#include <boost/json.hpp>

#include "fakes.hpp"
#include "infra/vote_codec.hpp"

using namespace vw;
using vw::testing::hash_of;

namespace {

decode_options opts;

std::string error_of(std::string_view body) {
  auto r = decode_vote(body, 0, opts);
  if (auto* m = std::get_if<malformed>(&r))
    return m->error_type;
  return "ok";
}

vote ok(std::string_view body, int64_t fallback = 0) {
  auto r = decode_vote(body, fallback, opts);
  if (auto* m = std::get_if<malformed>(&r))
    CAF_FAIL("expected a valid vote, got " << m->error_type << ": " << m->reason);
  return std::get<vote>(r);
}

} // namespace

CAF_TEST(a well formed vote decodes with its carried fields) {
  auto v = ok(R"({"voter_hash":")" + hash_of(1)
              + R"(","candidate_id":7,"election_id":3,"region_id":"r1"})");
  CAF_CHECK_EQUAL(v.voter_hash, hash_of(1));
  CAF_CHECK_EQUAL(v.candidate_id, 7);
  auto carried = boost::json::parse(v.carried_json).as_object();
  CAF_CHECK_EQUAL(carried.size(), 2u);
  CAF_CHECK_EQUAL(carried.at("election_id").as_int64(), 3);
  CAF_CHECK_EQUAL(v.fingerprint.size(), 16u);
}

CAF_TEST(aliases and upper case hashes are accepted) {
  std::string upper = hash_of(2);
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(c));
  auto v = ok(R"({"hash":")" + upper + R"(","candidate_id":1,"timestamp":"2026-11-01T10:00:00+02:00"})");
  CAF_CHECK_EQUAL(v.voter_hash, hash_of(2));
  CAF_CHECK_EQUAL(format_iso8601_us(v.vote_time_us), "2026-11-01T08:00:00.000000Z");
  auto w = ok(R"({"voter_hash":")" + hash_of(2)
              + R"(","candidate_id":1,"submitted_at":"2026-11-01 10:00:00.25"})");
  CAF_CHECK_EQUAL(format_iso8601_us(w.vote_time_us), "2026-11-01T10:00:00.250000Z");
}

CAF_TEST(personal data never survives decoding) {
  opts.pii_fields = {"nas", "code", "email"};
  auto v = ok(R"({"voter_hash":")" + hash_of(3)
              + R"(","candidate_id":1,"nas":"123456789","code":"ABC123","email":"a@b.c","law_id":"L1"})");
  CAF_CHECK_EQUAL(v.carried_json, R"({"law_id":"L1"})");
  opts.pii_fields = {"nas", "code"};
}

CAF_TEST(a missing timestamp falls back to the given time) {
  auto v = ok(vw::testing::vote_json(4, 2), 1700000000000000);
  CAF_CHECK_EQUAL(v.vote_time_us, 1700000000000000);
}

CAF_TEST(every class of malformed input has its own error type) {
  auto h = hash_of(5);
  CAF_CHECK_EQUAL(error_of(std::string(2000, ' ')), "oversized");
  CAF_CHECK_EQUAL(error_of(""), "empty_message");
  CAF_CHECK_EQUAL(error_of("   \n"), "empty_message");
  CAF_CHECK_EQUAL(error_of("{\"voter_hash\":\"\xff\xfe\"}"), "invalid_encoding");
  CAF_CHECK_EQUAL(error_of("{\"a\":\"\xc0\xaf\"}"), "invalid_encoding");
  CAF_CHECK_EQUAL(error_of("not json"), "invalid_json");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h), "invalid_json");
  CAF_CHECK_EQUAL(error_of(std::string("{\"a\":1}\0", 8)), "invalid_json");
  CAF_CHECK_EQUAL(error_of(std::string(20, '[') + std::string(20, ']')), "too_deep");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":1,"x":"a\u0000b"})"),
                  "invalid_character");
  CAF_CHECK_EQUAL(error_of("[1,2]"), "not_an_object");
  CAF_CHECK_EQUAL(error_of("42"), "not_an_object");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":1,"candidate_id":2})"),
                  "duplicate_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":1,"":1,"":2})"),
                  "duplicate_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":1,"x":[1e400]})"),
                  "invalid_number");
  CAF_CHECK_EQUAL(error_of(R"({"candidate_id":1})"), "missing_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"("})"), "missing_field");
  for (auto bad : {"0", "-3", "2147483648", "1.5", "\"7\"", "null", "true",
                   "18446744073709551615"})
    CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":)" + bad + "}"),
                    "invalid_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h.substr(1) + R"(","candidate_id":1})"),
                  "invalid_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h.substr(1) + R"(g","candidate_id":1})"),
                  "invalid_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":5,"candidate_id":1})"), "invalid_field");
  CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","hash":")" + hash_of(6)
                           + R"(","candidate_id":1})"),
                  "invalid_field");
  for (auto ts : {"\"2026-13-01T00:00:00Z\"", "\"2026-02-30T00:00:00Z\"", "\"yesterday\"",
                  "\"2026-01-01\"", "\"2026-01-01T25:00:00Z\"", "1700000000",
                  "\"2026-01-01T00:00:00+2\"", "\"2026-01-01T00:00:00+01:\"",
                  "\"2026-01-01T10:15:60Z\"", "\"9999-12-31T23:59:59-00:01\"",
                  "\"1900-01-01T00:00:00+00:01\""})
    CAF_CHECK_EQUAL(error_of(R"({"voter_hash":")" + h + R"(","candidate_id":1,"vote_timestamp":)"
                             + ts + "}"),
                    "invalid_field");
}

CAF_TEST(SQL looking strings are plain carried data) {
  auto v = ok(R"({"voter_hash":")" + hash_of(7)
              + R"(","candidate_id":1,"region_id":"1'); DROP TABLE vote_audit;--"})");
  auto carried = boost::json::parse(v.carried_json).as_object();
  CAF_CHECK_EQUAL(carried.at("region_id").as_string(), "1'); DROP TABLE vote_audit;--");
}

CAF_TEST(output messages carry the decision and the metadata) {
  ballot b;
  b.content = ok(R"({"voter_hash":")" + hash_of(8) + R"(","candidate_id":9,"election_id":2})",
                 1700000000000000);
  b.status = verdict::duplicate;
  b.duplicate_count = 2;
  b.review_reason = "voter has already voted";
  auto out = boost::json::parse(encode_output(b, "w1", 1700000001000000)).as_object();
  CAF_CHECK_EQUAL(out.at("voter_hash").as_string(), hash_of(8));
  CAF_CHECK_EQUAL(out.at("candidate_id").as_int64(), 9);
  CAF_CHECK_EQUAL(out.at("status").as_string(), "duplicate");
  CAF_CHECK_EQUAL(out.at("duplicate_count").as_int64(), 2);
  CAF_CHECK_EQUAL(out.at("attempt_count").as_int64(), 3);
  CAF_CHECK_EQUAL(out.at("worker_id").as_string(), "w1");
  CAF_CHECK_EQUAL(out.at("election_id").as_int64(), 2);
  CAF_CHECK_EQUAL(out.at("vote_timestamp").as_string(), "2023-11-14T22:13:20.000000Z");
  CAF_CHECK_EQUAL(out.at("processed_timestamp").as_string(), "2023-11-14T22:13:21.000000Z");
  auto meta = boost::json::parse(encode_audit_metadata(b, "w1")).as_object();
  CAF_CHECK_EQUAL(meta.at("worker_id").as_string(), "w1");
  CAF_CHECK_EQUAL(meta.at("duplicate_count").as_int64(), 2);
  CAF_CHECK_EQUAL(meta.at("fingerprint").as_string(), b.content.fingerprint);
}

CAF_TEST(timestamps round trip across leap years and offsets) {
  CAF_CHECK_EQUAL(format_iso8601_us(*parse_iso8601_us("2024-02-29T23:59:59.999999Z")),
                  "2024-02-29T23:59:59.999999Z");
  CAF_CHECK_EQUAL(format_iso8601_us(*parse_iso8601_us("2000-01-01T00:30:00-01:30")),
                  "2000-01-01T02:00:00.000000Z");
  CAF_CHECK(!parse_iso8601_us("2023-02-29T00:00:00Z"));
  CAF_CHECK(!parse_iso8601_us("2023-01-01T00:00:00Zjunk"));
}
