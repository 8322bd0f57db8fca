// One worker, one queue, every kind of input the contract names: first votes,
// repeat votes, unknown voters, aliases, carried metadata, personal data and
// one message of each malformed kind. Every outcome is checked exactly in all
// four places it shows: output queues, vote_audit, Redis and /metrics.
#define CAF_SUITE mixed_workload
#include <caf/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "tests/integration/harness.hpp"

using namespace it;
namespace json = boost::json;

namespace {

constexpr int registered = 200;
constexpr const char* election = "it-2026";
constexpr const char* worker_id = "it-mixed-1";

// PII values that must not show up anywhere but in the input queue.
constexpr const char* nas_valid = "NAS-111-222-333";
constexpr const char* code_valid = "CODE-VALID-4711";
constexpr const char* nas_unknown = "NAS-444-555-666";
constexpr const char* code_unknown = "CODE-UNKNOWN-0815";
constexpr const char* nas_dup = "NAS-777-888-999";
constexpr const char* code_dup = "CODE-DUP-1234";
constexpr const char* ssn_valid = "SSN-078-05-1120";

enum class ts_source { body, amqp_property, receipt };

struct expected_valid {
  int candidate = 0;
  ts_source source = ts_source::body;
  int64_t ts_us = 0; // for body / amqp_property
};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::string body_of(const json::object& o) {
  return json::serialize(o);
}

} // namespace

CAF_TEST(every outcome is exact in queues audit redis and metrics) {
  suite_stack s{"mixed_workload", 1, 18110};
  s.declare_queues();

  std::vector<std::string> voters;
  for (int i = 0; i < registered; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);
  CAF_REQUIRE_EQUAL(s.redis.scard("valid_hashes"), registered);

  const int64_t base_s = utc_us(2026, 3, 1, 8, 0, 0) / 1000000;      // body timestamps
  const int64_t amqp_base_s = utc_us(2026, 1, 1, 0, 0, 0) / 1000000; // AMQP property

  std::map<std::string, expected_valid> valid;         // voter_hash -> expectation
  std::map<std::string, std::set<int64_t>> dup_counts; // voter_hash -> duplicate_count values
  std::set<std::string> unknown;
  std::vector<outgoing> firsts, unknowns, repeats, malformed;

  // 150 first votes of registered voters 0..149.
  for (int i = 0; i < 150; ++i) {
    json::object o;
    o["voter_hash"] = voters[i];
    o["candidate_id"] = 1 + i % 7;
    o["election_id"] = election;
    o["region_id"] = i % 13;
    expected_valid e;
    e.candidate = 1 + i % 7;
    outgoing m;
    if (i < 130) {
      o["vote_timestamp"] = iso_utc(base_s + i);
      e.ts_us = (base_s + i) * 1000000;
    } else if (i < 135) {
      // fraction and explicit +00:00 zone
      auto text = iso_utc(base_s + i);
      text = text.substr(0, 19) + ".5+00:00";
      o["vote_timestamp"] = text;
      e.ts_us = (base_s + i) * 1000000 + 500000;
    } else if (i < 140) {
      // the submitted_at alias, without a zone (= UTC)
      o["submitted_at"] = iso_utc(base_s + i).substr(0, 19);
      e.ts_us = (base_s + i) * 1000000;
    } else if (i < 145) {
      // no timestamp in the body: the AMQP timestamp property counts
      m.timestamp = static_cast<uint64_t>(amqp_base_s + i);
      e.source = ts_source::amqp_property;
      e.ts_us = (amqp_base_s + i) * 1000000;
    } else {
      e.source = ts_source::receipt;
    }
    m.body = body_of(o);
    firsts.push_back(m);
    valid[voters[i]] = e;
  }
  // Alias `hash` in upper case and `timestamp` with an offset.
  {
    json::object o;
    o["hash"] = upper(voters[150]);
    o["candidate_id"] = 3;
    o["timestamp"] = "2026-03-01T12:30:00+02:00";
    o["election_id"] = election;
    firsts.push_back(outgoing{body_of(o), std::nullopt, true});
    valid[voters[150]] = expected_valid{3, ts_source::body, utc_us(2026, 3, 1, 10, 30, 0)};
  }
  // Personal data and more carried fields.
  {
    json::object o;
    o["voter_hash"] = voters[151];
    o["candidate_id"] = 4;
    o["vote_timestamp"] = "2026-03-01T09:15:00Z";
    o["election_id"] = election;
    o["nas"] = nas_valid;
    o["code"] = code_valid;
    o["ssn"] = ssn_valid; // PII by PII_FIELDS
    o["law_id"] = 42;
    o["vote"] = "yes";
    firsts.push_back(outgoing{body_of(o), std::nullopt, true});
    valid[voters[151]] = expected_valid{4, ts_source::body, utc_us(2026, 3, 1, 9, 15, 0)};
  }
  // 30 unknown voters.
  for (int j = 0; j < 30; ++j) {
    json::object o;
    o["voter_hash"] = unknown_hash(j);
    o["candidate_id"] = 2;
    o["vote_timestamp"] = iso_utc(base_s + 1000 + j);
    o["election_id"] = election;
    if (j == 0) {
      o["nas"] = nas_unknown;
      o["code"] = code_unknown;
    }
    unknowns.push_back(outgoing{body_of(o), std::nullopt, true});
    unknown.insert(unknown_hash(j));
  }
  // 40 repeat votes: voters 0..29 a second time, voters 0..9 a third time.
  for (int round = 1; round <= 2; ++round)
    for (int i = 0; i < (round == 1 ? 30 : 10); ++i) {
      json::object o;
      o["voter_hash"] = voters[i];
      o["candidate_id"] = 100 + round;
      o["vote_timestamp"] = iso_utc(base_s + 2000 + round * 100 + i);
      o["election_id"] = election;
      if (round == 1 && i == 5) {
        o["nas"] = nas_dup;
        o["code"] = code_dup;
      }
      repeats.push_back(outgoing{body_of(o), std::nullopt, true});
      dup_counts[voters[i]].insert(round);
    }

  // One message of each malformed kind; the ones that name a voter name a
  // registered voter (180..197) who never votes otherwise, so anything
  // written for them is visible.
  std::map<std::string, int> expected_errors;
  std::set<std::string> malformed_hashes;
  auto bad = [&](std::string body, const char* type, int voter = -1) {
    malformed.push_back(outgoing{std::move(body), std::nullopt, true});
    ++expected_errors[type];
    if (voter >= 0)
      malformed_hashes.insert(voters[voter]);
  };
  auto h = [&](int i) { return voters[i]; };
  {
    json::object o;
    o["voter_hash"] = h(180);
    o["candidate_id"] = 1;
    o["election_id"] = election;
    o["padding"] = std::string(1100, 'x');
    bad(body_of(o), "oversized", 180);
  }
  bad("", "empty_message");
  bad("{\"voter_hash\":\"" + h(182) + "\",\"candidate_id\":1,\"note\":\"\xff\xfe\"}",
      "invalid_encoding", 182);
  bad("this is not json " + h(183), "invalid_json", 183);
  bad("{\"voter_hash\":\"" + h(184) + "\",\"candidate_id\":", "invalid_json", 184);
  bad("{\"voter_hash\":\"" + h(185) + "\",\"candidate_id\":1,\"x\":" + std::string(19, '[')
        + std::string(19, ']') + "}",
      "too_deep", 185);
  bad("{\"voter_hash\":\"" + h(186) + "\",\"candidate_id\":1,\"note\":\"a\\u0000b\"}",
      "invalid_character", 186);
  bad("[{\"voter_hash\":\"" + h(187) + "\",\"candidate_id\":1}]", "not_an_object", 187);
  bad("{\"voter_hash\":\"" + h(188) + "\",\"candidate_id\":1,\"candidate_id\":2}",
      "duplicate_field", 188);
  bad("{\"candidate_id\":1,\"election_id\":\"it-2026\"}", "missing_field");
  bad("{\"voter_hash\":\"" + h(190) + "\",\"election_id\":\"it-2026\"}", "missing_field", 190);
  bad("{\"voter_hash\":\"" + h(191) + "\",\"candidate_id\":0}", "invalid_field", 191);
  bad("{\"voter_hash\":\"" + h(192) + "\",\"candidate_id\":2147483648}", "invalid_field", 192);
  bad("{\"voter_hash\":\"" + h(193) + "\",\"candidate_id\":1.5}", "invalid_field", 193);
  bad("{\"voter_hash\":\"" + h(194) + "\",\"candidate_id\":\"7\"}", "invalid_field", 194);
  bad("{\"voter_hash\":\"" + h(195).substr(0, 63) + "\",\"candidate_id\":1}", "invalid_field",
      195);
  bad("{\"voter_hash\":\"g" + h(196).substr(1) + "\",\"candidate_id\":1}", "invalid_field", 196);
  bad("{\"voter_hash\":\"" + h(197)
        + "\",\"candidate_id\":1,\"vote_timestamp\":\"2026-13-01T00:00:00Z\"}",
      "invalid_field", 197);
  CAF_REQUIRE_EQUAL(malformed.size(), 18u);

  // Publish order: first votes with malformed ones in between, unknown voters
  // with the rest of the malformed ones, then the repeats (in rounds, so each
  // voter's first vote is the one counted).
  std::vector<outgoing> all;
  size_t next_bad = 0;
  for (size_t i = 0; i < firsts.size(); ++i) {
    all.push_back(firsts[i]);
    if (i % 10 == 9 && next_bad < malformed.size())
      all.push_back(malformed[next_bad++]);
  }
  for (size_t j = 0; j < unknowns.size(); ++j) {
    all.push_back(unknowns[j]);
    if (j % 5 == 4 && next_bad < malformed.size())
      all.push_back(malformed[next_bad++]);
  }
  while (next_bad < malformed.size())
    all.push_back(malformed[next_bad++]);
  for (auto& m : repeats)
    all.push_back(m);

  const size_t n_valid = valid.size(), n_invalid = unknown.size(), n_duplicate = repeats.size(),
               n_malformed = malformed.size();
  CAF_REQUIRE_EQUAL(n_valid, 152u);
  CAF_REQUIRE_EQUAL(n_invalid, 30u);
  CAF_REQUIRE_EQUAL(n_duplicate, 40u);
  CAF_REQUIRE_EQUAL(all.size(), n_valid + n_invalid + n_duplicate + n_malformed);

  auto& w = s.add_worker(worker_id, s.port_base, {{"PII_FIELDS", "ssn"}});
  auto t_start = now_unix_us();
  CAF_REQUIRE(s.start_and_wait(w));
  s.amqp.publish(s.validation_q, all);
  CAF_MESSAGE("published " << all.size() << " messages");

  // Wait until every delivery is decided and the outputs are there.
  auto processed = [&](const metric_set& m) {
    return m.value("validation_votes_processed_total", {{"status", "valid"}})
           + m.value("validation_votes_processed_total", {{"status", "invalid"}})
           + m.value("validation_votes_processed_total", {{"status", "duplicate"}})
           + m.value("validation_votes_processed_total", {{"status", "malformed"}});
  };
  bool drained = wait_until(
    [&] {
      auto m = metric_set::scrape(w.metrics_port());
      return m && processed(*m) >= static_cast<double>(all.size())
             && s.amqp.count(s.aggregation_q) + s.amqp.count(s.review_q)
                  >= static_cast<int64_t>(n_valid + n_invalid + n_duplicate)
             && s.amqp.count(s.validation_q) == 0;
    },
    60s, 100ms);
  CAF_CHECK(drained);
  std::this_thread::sleep_for(1500ms); // nothing more may arrive
  auto t_done = now_unix_us();
  CAF_CHECK(w.running());

  // ---- queues: counts ----
  CAF_CHECK_EQUAL(s.amqp.count(s.validation_q), 0);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), static_cast<int64_t>(n_valid));
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), static_cast<int64_t>(n_invalid + n_duplicate));

  // ---- metrics ----
  auto m = metric_set::scrape(w.metrics_port());
  CAF_REQUIRE(m.has_value());
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "valid"}}), n_valid);
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "invalid"}}),
                  n_invalid);
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "duplicate"}}),
                  n_duplicate);
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "malformed"}}),
                  n_malformed);
  std::map<std::string, int> errors;
  for (auto& [type, v] : m->by_label("validation_errors_total", "error_type"))
    if (v != 0)
      errors[type] = static_cast<int>(v);
  CAF_CHECK_EQUAL(errors, expected_errors);
  auto latency_count = m->find("validation_processing_latency_seconds_count");
  CAF_CHECK(latency_count.has_value());
  CAF_CHECK_GREATER_OR_EQUAL(latency_count.value_or(0), n_valid + n_invalid + n_duplicate);
  CAF_CHECK_LESS_OR_EQUAL(latency_count.value_or(0), all.size());
  CAF_CHECK(m->find("validation_processing_latency_seconds_bucket", {{"le", "+Inf"}}).has_value());
  for (auto* family : {"redis_operations_total", "database_operations_total"}) {
    auto by_status = m->by_label(family, "status");
    double ok = 0, failed = 0;
    for (auto& [st, v] : by_status)
      (st == "error" || st == "failure" || st == "failed" ? failed : ok) += v;
    CAF_CHECK_GREATER(ok, 0);
    CAF_CHECK_EQUAL(failed, 0);
    CAF_CHECK(!m->by_label(family, "operation").empty());
  }
  // validation_queue_size is polled from the broker: it must come down to 0.
  CAF_CHECK(wait_until(
    [&] {
      auto q = metric_set::scrape(w.metrics_port());
      return q && q->find("validation_queue_size") == std::optional<double>{0.0};
    },
    5s, 200ms));

  // ---- Redis ----
  CAF_CHECK_EQUAL(s.redis.scard("valid_hashes"), registered);
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), static_cast<long long>(n_valid));
  std::set<std::string> valid_set, claim_keys, dup_keys;
  for (auto& [hash, e] : valid) {
    valid_set.insert(hash);
    claim_keys.insert("vote_claim:" + hash);
  }
  for (auto& [hash, counts] : dup_counts)
    dup_keys.insert("duplicate_count:" + hash);
  auto voted = s.redis.smembers("voted_hashes");
  CAF_CHECK_EQUAL(set_diff(valid_set, {voted.begin(), voted.end()}), "");
  auto claims_found = s.redis.keys("vote_claim:*");
  CAF_CHECK_EQUAL(set_diff(claim_keys, {claims_found.begin(), claims_found.end()}), "");
  for (auto& k : claim_keys) {
    auto ttl = s.redis.ttl(k);
    if (ttl <= 0 || ttl > 86400) {
      CAF_CHECK_GREATER(ttl, 0);
      CAF_CHECK_LESS_OR_EQUAL(ttl, 86400);
      break;
    }
  }
  auto dups_found = s.redis.keys("duplicate_count:*");
  CAF_CHECK_EQUAL(set_diff(dup_keys, {dups_found.begin(), dups_found.end()}), "");
  for (auto& [hash, counts] : dup_counts)
    CAF_CHECK_EQUAL(s.redis.get("duplicate_count:" + hash).value_or("<absent>"),
                    std::to_string(counts.size()));
  // Nothing else in the database: no key for an unknown or malformed voter.
  CAF_CHECK_EQUAL(s.redis.keys("*").size(), 2 + claim_keys.size() + dup_keys.size());
  for (auto& hash : unknown)
    CAF_CHECK(!s.redis.sismember("voted_hashes", hash));
  for (auto& hash : malformed_hashes) {
    CAF_CHECK(!s.redis.sismember("voted_hashes", hash));
    CAF_CHECK(!s.redis.exists("vote_claim:" + hash));
    CAF_CHECK(!s.redis.exists("duplicate_count:" + hash));
  }

  // ---- PostgreSQL ----
  auto& pg = s.pg();
  std::map<std::string, long long> expected_rows{{"valid", static_cast<long long>(n_valid)},
                                                 {"invalid", static_cast<long long>(n_invalid)},
                                                 {"duplicate",
                                                  static_cast<long long>(n_duplicate)}};
  CAF_CHECK_EQUAL(pg.count_by_status(), expected_rows);
  const long long n_rows = static_cast<long long>(n_valid + n_invalid + n_duplicate);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE metadata->>'worker_id' = $1",
                            {worker_id}),
                  n_rows);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE metadata ? 'fingerprint' "
                            "AND metadata ? 'delivery_tag' "
                            "AND metadata->>'redelivered' = 'false'"),
                  n_rows);
  CAF_CHECK_EQUAL(
    pg.scalar("SELECT count(*) FROM vote_audit WHERE metadata->>'election_id' = $1", {election}),
    n_rows);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE metadata ? 'nas' "
                            "OR metadata ? 'code' OR metadata ? 'ssn' "
                            "OR metadata::text ~ 'NAS-|CODE-|SSN-'"),
                  0);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE metadata->>'law_id' = '42' "
                            "AND metadata->>'vote' = 'yes' AND voter_hash = $1",
                            {voters[151]}),
                  1);
  // Valid rows: who, for whom, when.
  {
    std::set<std::string> seen;
    int wrong_candidate = 0, wrong_time = 0;
    for (auto& r : pg.query("SELECT voter_hash, candidate_id, "
                            "(extract(epoch FROM vote_timestamp) * 1000000)::bigint "
                            "FROM vote_audit WHERE status = 'valid'")) {
      auto hash = r[0].value_or("");
      seen.insert(hash);
      auto it = valid.find(hash);
      if (it == valid.end())
        continue;
      if (std::stoi(r[1].value_or("0")) != it->second.candidate)
        ++wrong_candidate;
      auto ts = std::stoll(r[2].value_or("0"));
      if (it->second.source == ts_source::receipt ? (ts < t_start - 2000000 || ts > t_done)
                                                  : ts != it->second.ts_us)
        ++wrong_time;
    }
    CAF_CHECK_EQUAL(set_diff(valid_set, seen), "");
    CAF_CHECK_EQUAL(wrong_candidate, 0);
    CAF_CHECK_EQUAL(wrong_time, 0);
  }
  {
    std::set<std::string> seen;
    for (auto& r : pg.query("SELECT voter_hash FROM vote_audit WHERE status = 'invalid'"))
      seen.insert(r[0].value_or(""));
    CAF_CHECK_EQUAL(set_diff(unknown, seen), "");
  }
  {
    std::map<std::string, std::string> got, want;
    for (auto& r : pg.query("SELECT voter_hash, string_agg(metadata->>'duplicate_count', ',' "
                            "ORDER BY (metadata->>'duplicate_count')::int) "
                            "FROM vote_audit WHERE status = 'duplicate' GROUP BY voter_hash"))
      got[r[0].value_or("")] = r[1].value_or("<null>");
    for (auto& [hash, counts] : dup_counts)
      want[hash] = counts.size() == 1 ? "1" : "1,2";
    CAF_CHECK_EQUAL(got.size(), want.size());
    CAF_CHECK(got == want);
    CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE status = 'duplicate' "
                              "AND candidate_id < 100"),
                    0);
  }
  {
    std::vector<std::string> mh(malformed_hashes.begin(), malformed_hashes.end());
    std::string list;
    for (auto& x : mh)
      list += (list.empty() ? "'" : ",'") + x + "'";
    CAF_CHECK_EQUAL(
      pg.scalar("SELECT count(*) FROM vote_audit WHERE voter_hash IN (" + list + ")"), 0);
  }

  // ---- output messages ----
  auto agg = s.amqp.take_all(s.aggregation_q);
  auto review = s.amqp.take_all(s.review_q);
  CAF_CHECK_EQUAL(agg.size(), n_valid);
  CAF_CHECK_EQUAL(review.size(), n_invalid + n_duplicate);
  auto pii_free = [](const amqp_message& msg, const json::object& o) {
    return !o.contains("nas") && !o.contains("code") && !o.contains("ssn")
           && !contains(msg.body, "NAS-") && !contains(msg.body, "CODE-")
           && !contains(msg.body, "SSN-");
  };
  auto processed_ok = [&](const json::object& o) {
    auto p = parse_utc_iso8601_us(str_field(o, "processed_timestamp"));
    return p && *p >= t_start - 2000000 && *p <= t_done + 2000000;
  };
  {
    std::set<std::string> seen;
    int bad_props = 0, bad_fields = 0, bad_candidate = 0, bad_time = 0, with_pii = 0, twice = 0;
    for (auto& msg : agg) {
      auto o = parse_object(msg.body);
      auto hash = str_field(o, "voter_hash");
      if (!seen.insert(hash).second)
        ++twice;
      if (msg.delivery_mode.value_or(0) != 2 || msg.content_type.value_or("") != "application/json"
          || msg.message_id.value_or("") != hash)
        ++bad_props;
      if (str_field(o, "status") != "valid" || str_field(o, "worker_id") != worker_id
          || str_field(o, "election_id") != election || !processed_ok(o)
          || o.contains("duplicate_count") || o.contains("attempt_count"))
        ++bad_fields;
      if (!pii_free(msg, o))
        ++with_pii;
      auto it = valid.find(hash);
      if (it == valid.end())
        continue;
      if (int_field(o, "candidate_id").value_or(-1) != it->second.candidate)
        ++bad_candidate;
      auto ts = parse_utc_iso8601_us(str_field(o, "vote_timestamp"));
      if (!ts
          || (it->second.source == ts_source::receipt ? (*ts < t_start - 2000000 || *ts > t_done)
                                                      : *ts != it->second.ts_us))
        ++bad_time;
    }
    CAF_CHECK_EQUAL(set_diff(valid_set, seen), "");
    CAF_CHECK_EQUAL(twice, 0);
    CAF_CHECK_EQUAL(bad_props, 0);
    CAF_CHECK_EQUAL(bad_fields, 0);
    CAF_CHECK_EQUAL(bad_candidate, 0);
    CAF_CHECK_EQUAL(bad_time, 0);
    CAF_CHECK_EQUAL(with_pii, 0);
    // carried fields of the vote with personal data
    for (auto& msg : agg) {
      auto o = parse_object(msg.body);
      if (str_field(o, "voter_hash") != voters[151])
        continue;
      CAF_CHECK_EQUAL(int_field(o, "law_id").value_or(-1), 42);
      CAF_CHECK_EQUAL(str_field(o, "vote"), "yes");
    }
  }
  {
    std::set<std::string> invalid_seen;
    std::map<std::string, std::set<int64_t>> dup_seen;
    int bad_props = 0, bad_invalid = 0, bad_dup = 0, with_pii = 0, other = 0;
    for (auto& msg : review) {
      auto o = parse_object(msg.body);
      auto hash = str_field(o, "voter_hash");
      auto status = str_field(o, "status");
      if (msg.delivery_mode.value_or(0) != 2
          || msg.content_type.value_or("") != "application/json")
        ++bad_props;
      if (!pii_free(msg, o))
        ++with_pii;
      if (str_field(o, "worker_id") != worker_id || str_field(o, "election_id") != election
          || !processed_ok(o) || !parse_utc_iso8601_us(str_field(o, "vote_timestamp")))
        ++other;
      if (status == "invalid") {
        invalid_seen.insert(hash);
        if (str_field(o, "reason").empty() || o.contains("duplicate_count")
            || int_field(o, "candidate_id").value_or(-1) != 2)
          ++bad_invalid;
      } else if (status == "duplicate") {
        auto dc = int_field(o, "duplicate_count");
        auto ac = int_field(o, "attempt_count");
        if (!dc || !ac || *ac != *dc + 1 || str_field(o, "reason").empty()
            || int_field(o, "candidate_id").value_or(-1) != 100 + *dc)
          ++bad_dup;
        if (dc && !dup_seen[hash].insert(*dc).second)
          ++bad_dup;
      } else {
        ++other;
      }
    }
    CAF_CHECK_EQUAL(set_diff(unknown, invalid_seen), "");
    CAF_CHECK(dup_seen == dup_counts);
    CAF_CHECK_EQUAL(bad_props, 0);
    CAF_CHECK_EQUAL(bad_invalid, 0);
    CAF_CHECK_EQUAL(bad_dup, 0);
    CAF_CHECK_EQUAL(with_pii, 0);
    CAF_CHECK_EQUAL(other, 0);
  }

  // ---- stop ----
  auto code = w.stop(15s);
  CAF_CHECK_EQUAL(code.value_or(-1), 0);
  auto log = w.log();
  CAF_CHECK(contains(log, "shutdown complete"));
  for (auto* secret :
       {nas_valid, code_valid, nas_unknown, code_unknown, nas_dup, code_dup, ssn_valid})
    CAF_CHECK(!contains(log, secret));
  // No per-vote logging at INFO: no counted voter shows up in the log.
  int logged_voters = 0;
  for (auto& [hash, e] : valid)
    if (contains(log, hash))
      ++logged_voters;
  CAF_CHECK_EQUAL(logged_voters, 0);
}
