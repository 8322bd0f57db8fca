// G2 under concurrency: three workers on one queue, 500 voters submitting 4
// times each, back to back. Exactly one vote per voter may be counted (the
// Python reference counted 517), and the duplicate counters must be exact.
// The workers declare the queues themselves (none exists beforehand).
//
// Two orders: rounds (v1..v500, v1..v500, ...), as the ingestion API sends a
// wave of resubmissions; and adjacent (v1,v1,v1,v1,v2,...), where the broker's
// round robin hands one voter's attempts to different workers at the same
// moment: the order that exposes a check-then-set claim.
#define CAF_SUITE three_workers
#include <caf/test/unit_test.hpp>

#include <set>

#include "tests/integration/harness.hpp"

using namespace it;
namespace json = boost::json;

namespace {

constexpr int voters_n = 500;
constexpr int attempts = 4;

enum class order { rounds, adjacent };

void run_three_workers(order pattern) {
  suite_stack s{"three_workers", 4, 18160};
  std::vector<std::string> voters;
  for (int i = 0; i < voters_n; ++i)
    voters.push_back(voter_hash(i));
  s.register_voters(voters);

  std::vector<worker_process*> workers;
  const std::vector<std::string> ids = {"it-three-a", "it-three-b", "it-three-c"};
  for (size_t k = 0; k < ids.size(); ++k) {
    auto& w = s.add_worker(ids[k], static_cast<uint16_t>(s.port_base + k),
                           {{"PREFETCH_COUNT", "50"}});
    workers.push_back(&w);
  }
  for (auto* w : workers)
    CAF_REQUIRE(s.start_and_wait(*w));
  // All three consuming before anything is published.
  bool consuming = wait_until(
    [&] {
      auto info = s.amqp.inspect(s.validation_q);
      return info && info->consumers == 3;
    },
    20s, 50ms);
  CAF_REQUIRE(consuming);

  std::vector<outgoing> msgs;
  const int64_t base_s = utc_us(2026, 3, 1, 8, 0, 0) / 1000000;
  auto add = [&](int round, int i) {
    json::object o;
    o["voter_hash"] = voters[i];
    o["candidate_id"] = 1 + round;
    o["vote_timestamp"] = iso_utc(base_s + round * 1000 + i);
    msgs.push_back(outgoing{json::serialize(o), std::nullopt, true});
  };
  if (pattern == order::rounds) {
    for (int round = 0; round < attempts; ++round)
      for (int i = 0; i < voters_n; ++i)
        add(round, i);
  } else {
    for (int i = 0; i < voters_n; ++i)
      for (int round = 0; round < attempts; ++round)
        add(round, i);
  }
  s.amqp.publish(s.validation_q, msgs);
  const int total = voters_n * attempts;

  auto outputs = [&] {
    return std::max<int64_t>(0, s.amqp.count(s.aggregation_q))
           + std::max<int64_t>(0, s.amqp.count(s.review_q));
  };
  auto decided = [&] {
    double sum = 0;
    for (auto* st : {"valid", "invalid", "duplicate", "malformed"}) {
      auto v = suite_stack::sum_metric(workers, "validation_votes_processed_total",
                                       {{"status", st}});
      if (v < 0)
        return -1.0;
      sum += v;
    }
    return sum;
  };
  bool drained = wait_until(
    [&] {
      return outputs() >= total && decided() >= total && s.amqp.count(s.validation_q) == 0;
    },
    120s, 100ms);
  CAF_CHECK(drained);
  std::this_thread::sleep_for(1500ms);
  for (auto* w : workers)
    CAF_CHECK(w->running());

  const long long dups = static_cast<long long>(voters_n) * (attempts - 1);
  // Metrics, summed over the workers.
  auto metric_sum = [&](const char* status) {
    return suite_stack::sum_metric(workers, "validation_votes_processed_total",
                                   {{"status", status}});
  };
  CAF_CHECK_EQUAL(metric_sum("valid"), voters_n);
  CAF_CHECK_EQUAL(metric_sum("duplicate"), dups);
  CAF_CHECK_EQUAL(metric_sum("invalid"), 0);
  CAF_CHECK_EQUAL(metric_sum("malformed"), 0);

  // Audit: exactly 500 valid, 1500 duplicates; per worker as its metrics say.
  auto& pg = s.pg();
  std::map<std::string, long long> expected_rows{{"valid", voters_n}, {"duplicate", dups}};
  CAF_CHECK_EQUAL(pg.count_by_status(), expected_rows);
  CAF_CHECK_EQUAL(
    pg.scalar("SELECT count(DISTINCT voter_hash) FROM vote_audit WHERE status = 'valid'"),
    voters_n);
  for (auto* w : workers) {
    auto m = metric_set::scrape(w->metrics_port());
    CAF_REQUIRE(m.has_value());
    auto id = w->env().at("WORKER_ID");
    for (auto* st : {"valid", "duplicate"}) {
      auto rows = pg.scalar("SELECT count(*) FROM vote_audit WHERE status = $1 "
                            "AND metadata->>'worker_id' = $2",
                            {st, id});
      CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", st}}), rows);
    }
    CAF_MESSAGE(id << " decided "
                   << m->value("validation_votes_processed_total", {{"status", "valid"}})
                   << " valid, "
                   << m->value("validation_votes_processed_total", {{"status", "duplicate"}})
                   << " duplicates");
  }
  {
    // Every voter has exactly three duplicate rows, with counts 1, 2, 3.
    auto bad = pg.scalar(
      "SELECT count(*) FROM (SELECT voter_hash, string_agg(metadata->>'duplicate_count', ',' "
      "ORDER BY (metadata->>'duplicate_count')::int) AS c FROM vote_audit "
      "WHERE status = 'duplicate' GROUP BY voter_hash) t WHERE c <> '1,2,3'");
    CAF_CHECK_EQUAL(bad, 0);
  }

  // Redis.
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), voters_n);
  int wrong_counter = 0;
  for (auto& h : voters)
    if (s.redis.get("duplicate_count:" + h).value_or("<absent>") != std::to_string(attempts - 1))
      ++wrong_counter;
  CAF_CHECK_EQUAL(wrong_counter, 0);
  CAF_CHECK_EQUAL(s.redis.keys("vote_claim:*").size(), static_cast<size_t>(voters_n));

  // Queues.
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), voters_n);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), dups);
  auto agg = s.amqp.take_all(s.aggregation_q);
  auto review = s.amqp.take_all(s.review_q);
  std::set<std::string> counted, expected(voters.begin(), voters.end());
  std::set<std::string> worker_ids(ids.begin(), ids.end());
  int bad_agg = 0;
  for (auto& m : agg) {
    auto o = parse_object(m.body);
    auto h = str_field(o, "voter_hash");
    counted.insert(h);
    if (str_field(o, "status") != "valid" || m.message_id.value_or("") != h
        || worker_ids.count(str_field(o, "worker_id")) == 0)
      ++bad_agg;
  }
  CAF_CHECK_EQUAL(agg.size(), static_cast<size_t>(voters_n));
  CAF_CHECK_EQUAL(counted.size(), static_cast<size_t>(voters_n));
  CAF_CHECK_EQUAL(set_diff(expected, counted), "");
  CAF_CHECK_EQUAL(bad_agg, 0);
  std::map<std::string, std::set<int64_t>> dup_seen;
  int bad_review = 0;
  for (auto& m : review) {
    auto o = parse_object(m.body);
    auto dc = int_field(o, "duplicate_count");
    auto ac = int_field(o, "attempt_count");
    if (str_field(o, "status") != "duplicate" || !dc || !ac || *ac != *dc + 1
        || !dup_seen[str_field(o, "voter_hash")].insert(*dc).second)
      ++bad_review;
  }
  CAF_CHECK_EQUAL(review.size(), static_cast<size_t>(dups));
  CAF_CHECK_EQUAL(bad_review, 0);
  int wrong_sets = 0;
  for (auto& h : voters)
    if (dup_seen[h] != std::set<int64_t>{1, 2, 3})
      ++wrong_sets;
  CAF_CHECK_EQUAL(wrong_sets, 0);

  for (auto* w : workers)
    w->terminate();
  for (auto* w : workers) {
    auto code = w->wait_exit(15s);
    CAF_CHECK_EQUAL(code.value_or(-1), 0);
    CAF_CHECK(contains(w->log(), "shutdown complete"));
  }
}

} // namespace

CAF_TEST(three workers count each voter once with resubmissions in rounds) {
  run_three_workers(order::rounds);
}

CAF_TEST(three workers count each voter once with adjacent attempts) {
  run_three_workers(order::adjacent);
}
