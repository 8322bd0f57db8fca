#define CAF_SUITE consumer
#include "pipeline_fixture.hpp"

using namespace vw;
using namespace vw::testing;

CAF_TEST_FIXTURE_SCOPE(consumer_tests, pipeline_fixture)

CAF_TEST(the decision table: valid invalid duplicate malformed) {
  source->push(vote_json(1, 3));                       // tag 1: valid
  source->push(vote_json(1, 4));                       // tag 2: duplicate
  source->push(vote_json(500, 1));                     // tag 3: unknown voter
  source->push("{not json");                           // tag 4: malformed
  source->push(vote_json(2, 1, R"(,"nas":"123")"));    // tag 5: valid
  start();
  CAF_CHECK_EQUAL(log->position("reject:4") >= 0, true);
  CAF_CHECK_EQUAL(source->queue.size(), 0u);
  CAF_REQUIRE_EQUAL(sink->published.size(), 4u);
  CAF_CHECK_EQUAL(sink->published[0].second, verdict::valid);
  CAF_CHECK_EQUAL(sink->published[1].second, verdict::duplicate);
  CAF_CHECK_EQUAL(sink->published[2].second, verdict::invalid);
  CAF_CHECK_EQUAL(sink->published[3].second, verdict::valid);
  CAF_CHECK_EQUAL(audit->rows.size(), 4u);
  CAF_CHECK_EQUAL(claims->duplicate_counts[hash_of(1)], 1);
  // One ack with `multiple` covers the whole batch, malformed tag included.
  CAF_CHECK(log->position("ack<=5") >= 0);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 1u);
  CAF_CHECK_EQUAL(log->count_prefix("requeue"), 0u);
  CAF_CHECK_EQUAL(processed("valid"), 2.0);
  CAF_CHECK_EQUAL(processed("duplicate"), 1.0);
  CAF_CHECK_EQUAL(processed("invalid"), 1.0);
  CAF_CHECK_EQUAL(processed("malformed"), 1.0);
}

CAF_TEST(a malformed message writes nothing) {
  source->push("[]");
  source->push(R"({"candidate_id":1})");
  start();
  CAF_CHECK(log->position("reject:1") >= 0);
  CAF_CHECK(log->position("reject:2") >= 0);
  CAF_CHECK_EQUAL(audit->rows.size(), 0u);
  CAF_CHECK_EQUAL(sink->published.size(), 0u);
  CAF_CHECK_EQUAL(claims->claims.size(), 0u);
}

CAF_TEST(acks come only after the audit row and the confirmed publish) {
  source->push(vote_json(7, 1));
  start();
  auto audited = log->position("audit:" + hash_of(7));
  auto published = log->position("publish:" + hash_of(7));
  auto acked = log->position("ack<=1");
  CAF_REQUIRE(audited >= 0 && published >= 0 && acked >= 0);
  CAF_CHECK_LESS(audited, published);
  CAF_CHECK_LESS(published, acked);
}

CAF_TEST(redis down requeues the batch and writes nothing) {
  registry->down = true;
  source->push(vote_json(1, 1));
  source->push(vote_json(2, 1));
  start();
  CAF_CHECK(log->position("requeue:1") >= 0);
  CAF_CHECK(log->position("requeue:2") >= 0);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 0u);
  CAF_CHECK_EQUAL(audit->rows.size(), 0u);
  CAF_CHECK_EQUAL(sink->published.size(), 0u);
  CAF_CHECK_EQUAL(claims->claims.size(), 0u);
}

CAF_TEST(a failed claim requeues the batch) {
  claims->down = true;
  source->push(vote_json(1, 1));
  start();
  CAF_CHECK(log->position("requeue:1") >= 0);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 0u);
  CAF_CHECK_EQUAL(audit->rows.size(), 0u);
}

CAF_TEST(a database failure undoes the claim before the nack) {
  audit->down = true;
  source->push(vote_json(3, 1));
  start();
  auto released = log->position("release:" + hash_of(3));
  auto requeued = log->position("requeue:1");
  CAF_REQUIRE(released >= 0 && requeued >= 0);
  CAF_CHECK_LESS(released, requeued);
  CAF_CHECK_EQUAL(claims->claims.count(hash_of(3)), 0u);
  CAF_CHECK_EQUAL(sink->published.size(), 0u);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 0u);
}

CAF_TEST(the redelivery after a database failure is counted once as valid) {
  audit->down = true;
  source->push(vote_json(3, 1));
  start();
  audit->down = false;
  source->push(vote_json(3, 1), true); // the broker redelivers tag 1 as tag 2
  sched.trigger_timeouts();            // end of the intake pause
  sched.run();
  CAF_REQUIRE_EQUAL(sink->published.size(), 1u);
  CAF_CHECK_EQUAL(sink->published[0].second, verdict::valid);
  CAF_CHECK(log->position("ack<=2") >= 0);
}

CAF_TEST(a publish failure keeps the claim and requeues) {
  sink->down = true;
  source->push(vote_json(4, 1));
  start();
  CAF_CHECK(log->position("requeue:1") >= 0);
  CAF_CHECK_EQUAL(claims->claims.count(hash_of(4)), 1u);
  CAF_CHECK_EQUAL(log->count_prefix("ack"), 0u);
  // The redelivery resumes its own claim instead of becoming a duplicate.
  sink->down = false;
  source->push(vote_json(4, 1), true);
  sched.trigger_timeouts();
  sched.run();
  CAF_REQUIRE_EQUAL(sink->published.size(), 1u);
  CAF_CHECK_EQUAL(sink->published[0].second, verdict::valid);
  CAF_CHECK_EQUAL(claims->duplicate_counts.count(hash_of(4)), 0u);
}

CAF_TEST(intake pauses after a failure instead of spinning) {
  registry->down = true;
  source->push(vote_json(1, 1));
  start();
  CAF_CHECK_EQUAL(log->count_prefix("requeue"), 1u);
  source->push(vote_json(1, 1), true);
  sched.run(); // no timeout fired: the consumer must not take the redelivery yet
  CAF_CHECK_EQUAL(source->queue.size(), 1u);
  registry->down = false;
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(source->queue.size(), 0u);
  CAF_CHECK_EQUAL(sink->published.size(), 1u);
}

CAF_TEST(batches hold at most batch_size deliveries) {
  for (int i = 1; i <= 25; ++i)
    source->push(vote_json(i, 1));
  start(10);
  CAF_CHECK_EQUAL(sink->published.size(), 25u);
  CAF_CHECK_EQUAL(stats->processed("valid"), 25.0);
  CAF_CHECK(log->position("ack<=10") >= 0);
  CAF_CHECK(log->position("ack<=20") >= 0);
  CAF_CHECK(log->position("ack<=25") >= 0);
}

CAF_TEST(a lost connection is reopened and stale acks are dropped) {
  source->push(vote_json(1, 1));
  start();
  CAF_CHECK_EQUAL(source->opens, 1);
  source->broken = true;
  sched.trigger_timeouts();
  sched.run();
  source->broken = false;
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(source->opens, 2);
  source->push(vote_json(2, 1));
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(sink->published.size(), 2u);
}

CAF_TEST(drain cancels the consumer and finishes in-flight work) {
  for (int i = 1; i <= 3; ++i)
    source->push(vote_json(i, 1));
  input = sys.spawn(consumer, source, stages, settings(10), stats);
  // Run until the consumer's first poll took the three deliveries.
  while (log->position("open") < 0 && sched.try_run_once())
    ;
  CAF_REQUIRE_EQUAL(source->queue.size(), 0u);
  self->send(input, drain_atom::value);
  sched.run();
  auto cancelled = log->position("cancel");
  auto acked = log->position("ack<=3");
  auto closed = log->position("close");
  CAF_REQUIRE(cancelled >= 0 && acked >= 0 && closed >= 0);
  CAF_CHECK_LESS(acked, closed);
  CAF_CHECK_EQUAL(sink->published.size(), 3u);
}

CAF_TEST_FIXTURE_SCOPE_END()
