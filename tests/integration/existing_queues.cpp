// Existing deployments: queues already declared with their own arguments
// (the worker must not die on PRECONDITION_FAILED nor change them) and an
// older vote_audit without the unique index on valid votes (the worker must
// work and warn).
#define CAF_SUITE existing_queues
#include <caf/test/unit_test.hpp>

#include <set>

#include "tests/integration/harness.hpp"

using namespace it;
namespace json = boost::json;

namespace {

// 20 votes: 16 first votes of registered voters, 2 unknown voters, 2 repeats.
struct workload {
  std::vector<std::string> registered;
  std::vector<std::string> bodies;
  std::set<std::string> valid, unknown;
};

workload twenty_votes() {
  workload w;
  for (int i = 0; i < 18; ++i)
    w.registered.push_back(voter_hash(i));
  auto vote = [&](const std::string& h, int candidate) {
    json::object o;
    o["voter_hash"] = h;
    o["candidate_id"] = candidate;
    o["vote_timestamp"] = "2026-03-01T08:00:00Z";
    w.bodies.push_back(json::serialize(o));
  };
  for (int i = 0; i < 16; ++i) {
    vote(w.registered[i], 1 + i % 3);
    w.valid.insert(w.registered[i]);
  }
  for (int j = 0; j < 2; ++j) {
    vote(unknown_hash(j), 1);
    w.unknown.insert(unknown_hash(j));
  }
  vote(w.registered[0], 9);
  vote(w.registered[1], 9);
  return w;
}

// Waits for the 20 votes and checks every count.
void check_twenty(suite_stack& s, worker_process& w, const workload& load) {
  bool drained = wait_until(
    [&] {
      return s.amqp.count(s.aggregation_q) + s.amqp.count(s.review_q) >= 20
             && s.amqp.count(s.validation_q) == 0;
    },
    30s, 50ms);
  CAF_CHECK(drained);
  std::this_thread::sleep_for(1000ms);
  CAF_CHECK(w.running());
  CAF_CHECK_EQUAL(s.amqp.count(s.validation_q), 0);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), 16);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), 4);
  std::map<std::string, long long> rows{{"valid", 16}, {"invalid", 2}, {"duplicate", 2}};
  CAF_CHECK_EQUAL(s.pg().count_by_status(), rows);
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), 16);
  CAF_CHECK_EQUAL(s.redis.get("duplicate_count:" + load.registered[0]).value_or("<absent>"), "1");
  CAF_CHECK_EQUAL(s.redis.get("duplicate_count:" + load.registered[1]).value_or("<absent>"), "1");
  auto m = metric_set::scrape(w.metrics_port());
  CAF_REQUIRE(m.has_value());
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "valid"}}), 16);
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "invalid"}}), 2);
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "duplicate"}}), 2);
  auto agg = s.amqp.take_all(s.aggregation_q);
  std::set<std::string> counted;
  for (auto& msg : agg)
    counted.insert(str_field(parse_object(msg.body), "voter_hash"));
  CAF_CHECK_EQUAL(set_diff(load.valid, counted), "");
  std::set<std::string> invalid;
  int duplicates = 0;
  for (auto& msg : s.amqp.take_all(s.review_q)) {
    auto o = parse_object(msg.body);
    if (str_field(o, "status") == "invalid")
      invalid.insert(str_field(o, "voter_hash"));
    else if (str_field(o, "status") == "duplicate" && int_field(o, "duplicate_count") == 1)
      ++duplicates;
  }
  CAF_CHECK_EQUAL(set_diff(load.unknown, invalid), "");
  CAF_CHECK_EQUAL(duplicates, 2);
}

} // namespace

CAF_TEST(queues declared with other arguments are used as they are) {
  suite_stack s{"existing_queues", 5, 18170};
  // The dead-letter exchange gets a name of this run (not a shared "dlx") and
  // a queue behind it: malformed input must be rejected without requeue, so
  // the deployment's dead-letter policy catches it.
  const std::string dlx = s.validation_q + ".dlx", dlq = s.validation_q + ".dead";
  s.amqp.declare_exchange(dlx, "fanout");
  CAF_REQUIRE_EQUAL(s.amqp.declare(dlq, {{"x-expires", int64_t{1800000}}}), "");
  s.amqp.bind(dlq, dlx, "");
  struct cleanup {
    suite_stack& s;
    std::string dlx, dlq;
    ~cleanup() {
      s.amqp.remove(dlq);
      s.amqp.remove_exchange(dlx);
    }
  } cleanup_dlx{s, dlx, dlq};
  const amqp_args args{{"x-message-ttl", int64_t{3600000}},
                       {"x-max-length", int64_t{100000}},
                       {"x-dead-letter-exchange", dlx}};
  for (auto* q : {&s.validation_q, &s.review_q, &s.aggregation_q})
    CAF_REQUIRE_EQUAL(s.amqp.declare(*q, args), "");
  auto load = twenty_votes();
  const std::vector<std::string> malformed = {"not json at all", "{\"candidate_id\":5}"};
  s.register_voters(load.registered);

  auto& w = s.add_worker("it-existing", s.port_base);
  CAF_REQUIRE(s.start_and_wait(w));
  bool consuming = wait_until(
    [&] {
      auto info = s.amqp.inspect(s.validation_q);
      return (info && info->consumers == 1) || !w.running();
    },
    15s, 50ms);
  CAF_REQUIRE(consuming);
  CAF_REQUIRE(w.running());
  auto bodies = load.bodies;
  bodies.insert(bodies.begin() + 5, malformed[0]);
  bodies.push_back(malformed[1]);
  s.amqp.publish(s.validation_q, bodies);
  check_twenty(s, w, load);
  auto m = metric_set::scrape(w.metrics_port());
  CAF_REQUIRE(m.has_value());
  CAF_CHECK_EQUAL(m->value("validation_votes_processed_total", {{"status", "malformed"}}), 2);
  // Exactly the two malformed messages were dead-lettered, nothing else.
  CAF_CHECK(wait_until([&] { return s.amqp.count(dlq) >= 2; }, 5s));
  std::this_thread::sleep_for(300ms);
  std::multiset<std::string> dead;
  for (auto& msg : s.amqp.take_all(dlq))
    dead.insert(msg.body);
  CAF_CHECK(dead == std::multiset<std::string>(malformed.begin(), malformed.end()));
  CAF_CHECK_EQUAL(dead.size(), 2u);

  // The queues still carry their arguments: redeclaring with the same ones
  // is accepted, redeclaring without them is refused as inequivalent.
  for (auto* q : {&s.validation_q, &s.review_q, &s.aggregation_q}) {
    CAF_CHECK_EQUAL(s.amqp.declare(*q, args), "");
    auto refusal = s.amqp.declare(*q, {});
    CAF_CHECK(contains(refusal, "406"));
  }
  auto code = w.stop(15s);
  CAF_CHECK_EQUAL(code.value_or(-1), 0);
  auto log = w.log();
  CAF_CHECK(!contains(log, "PRECONDITION_FAILED"));
  CAF_CHECK(!contains(log, "inequivalent"));
}

CAF_TEST(audit table without the unique index works and warns) {
  suite_stack s{"existing_queues_noindex", 6, 18175};
  s.pg().exec("DROP INDEX uq_vote_audit_valid_voter");
  CAF_REQUIRE_EQUAL(s.pg().scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'vote_audit'"),
                    4); // primary key + the three seed indexes
  s.declare_queues();
  auto load = twenty_votes();
  s.register_voters(load.registered);
  auto& w = s.add_worker("it-noindex", s.port_base);
  CAF_REQUIRE(s.start_and_wait(w));
  s.amqp.publish(s.validation_q, load.bodies);
  check_twenty(s, w, load);
  // SIGINT stops it as cleanly as SIGTERM.
  w.send_signal(SIGINT);
  auto code = w.wait_exit(15s);
  CAF_CHECK_EQUAL(code.value_or(-1), 0);
  CAF_CHECK(contains(w.log(), "shutdown complete"));
  auto warning = lines_containing(w.log(), "unique index");
  CAF_CHECK_EQUAL(warning.size(), 1u);
}
