#include "actors/consumer.hpp"

#include <caf/event_based_actor.hpp>

#include "actors/thread_name.hpp"

namespace vw {

namespace {

using self_ptr = consumer_actor::stateful_pointer<consumer_state>;
using clock = consumer_state::clock;

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string describe(const caf::error& e) {
  if (e.category() == pipeline_error_category) {
    auto text = to_string(static_cast<pipeline_errc>(e.code()));
    if (!e.context().empty() && e.context().match_elements<std::string>())
      text += ": " + e.context().get_as<std::string>(0);
    return text;
  }
  return caf::to_string(e);
}

std::string error_type(const caf::error& e) {
  if (e.category() == pipeline_error_category)
    return to_string(static_cast<pipeline_errc>(e.code()));
  return "stage_unreachable";
}

using settlement = consumer_state::settlement;

void track(consumer_state& st, uint64_t tag) {
  if (st.unsettled.empty())
    st.unsettled_base = tag;
  // A gap would be a tag the broker never gave us: nothing to ack there.
  while (st.unsettled_base + st.unsettled.size() < tag)
    st.unsettled.push_back(settlement::settled);
  st.unsettled.push_back(settlement::pending);
}

void mark(consumer_state& st, uint64_t tag, settlement how) {
  if (tag >= st.unsettled_base && tag - st.unsettled_base < st.unsettled.size())
    st.unsettled[tag - st.unsettled_base] = how;
}

// Acks, with `multiple`, the finished deliveries at the head of the window:
// one frame per batch in the common case. The tag acked is always one still
// outstanding at the broker (requeued and rejected ones are only skipped).
void flush_acks(self_ptr self) {
  auto& st = self->state;
  uint64_t highest = 0;
  while (!st.unsettled.empty() && st.unsettled.front() != settlement::pending) {
    if (st.unsettled.front() == settlement::ack)
      highest = st.unsettled_base;
    st.unsettled.pop_front();
    ++st.unsettled_base;
  }
  if (highest != 0)
    if (auto r = st.source->ack(highest, true); r.failed())
      st.log->warn("ack up to delivery {} failed: {}; the broker will redeliver", highest,
                   r.what());
  st.stats->in_flight(static_cast<double>(st.unsettled.size()));
}

void finish_drain_if_done(self_ptr self) {
  auto& st = self->state;
  if (!st.draining || st.drained || !st.in_flight.empty() || !st.forming.ballots.empty())
    return;
  st.drained = true;
  st.source->close();
  st.connected = false;
  st.log->info("input drained: consumer cancelled, in-flight work acked, channel closed");
  st.drain_promise.deliver(drained_atom::value);
}

void lose_connection(self_ptr self) {
  auto& st = self->state;
  st.log->warn("lost the RabbitMQ consumer connection: {}; {} unacked deliveries go back to the "
               "queue, reconnecting with backoff",
               st.source->last_error(), st.unsettled.size());
  st.source->close();
  st.connected = false;
  st.stats->dependency_up("rabbitmq", false);
  st.stats->consuming(false);
  st.unsettled.clear();
  st.forming = ballot_batch{};
  st.forming_received.clear();
  st.stats->in_flight(0);
  st.reconnect_at = self->clock().now();
}

// A batch that could not finish: requeue its deliveries and pause intake.
void fail(self_ptr self, uint64_t id, const char* stage, const caf::error& err) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return;
  auto rec = std::move(it->second);
  st.in_flight.erase(it);
  st.stats->error(error_type(err));
  if (rec.epoch == st.epoch && st.connected) {
    for (auto tag : rec.tags) {
      mark(st, tag, settlement::settled);
      if (auto r = st.source->requeue(tag); r.failed())
        break;
    }
    if (!st.source->healthy())
      lose_connection(self);
    else
      flush_acks(self);
  }
  auto pause = st.failure_backoff.next();
  st.resume_at = self->clock().now() + pause;
  if (st.failure_backoff.attempts() == 1)
    st.log->warn("batch of {} votes failed at the {}: {}; requeued, pausing intake for {} ms "
                 "(backing off while it keeps failing)",
                 rec.tags.size(), stage, describe(err), pause.count());
  else
    st.log->debug("batch of {} votes failed at the {}: {}; pausing intake for {} ms",
                  rec.tags.size(), stage, describe(err), pause.count());
  finish_drain_if_done(self);
}

// Every effect of the batch is durable: ack it.
void complete(self_ptr self, uint64_t id) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return;
  auto rec = std::move(it->second);
  st.in_flight.erase(it);
  st.failure_backoff.reset();
  if (rec.epoch != st.epoch || !st.connected) {
    // The channel these tags belong to is gone: the broker redelivers them
    // and the redelivery resumes its own claim.
    st.log->debug("batch {} finished after its channel closed; its redeliveries will resume", id);
    finish_drain_if_done(self);
    return;
  }
  auto now = clock::now();
  for (size_t i = 0; i < rec.tags.size(); ++i) {
    mark(st, rec.tags[i], settlement::ack);
    auto latency = std::chrono::duration<double>(now - rec.received[i]).count();
    st.stats->vote_processed(rec.outcomes[i], latency);
  }
  flush_acks(self);
  finish_drain_if_done(self);
}

const char* stage_label[] = {"validator", "dedup stage", "auditor", "publisher"};

// Notes that batch `id` now waits for stage `k` (handle `h`); false, after
// failing the batch, when that stage is missing (a remote one not connected).
template <class Handle>
bool enter_stage(self_ptr self, uint64_t id, int k, const Handle& h) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return false;
  if (!h) {
    fail(self, id, stage_label[k],
         make_error(pipeline_errc::stage_unavailable, "no connection to the node serving it"));
    return false;
  }
  it->second.stage = k;
  it->second.at = h.address();
  it->second.sent = clock::now();
  return true;
}

// Records the batch's round trip through the stage it was at.
void leave_stage(self_ptr self, uint64_t id) {
  auto& st = self->state;
  if (auto it = st.in_flight.find(id); it != st.in_flight.end())
    st.stats->stage_latency(it->second.stage,
                            std::chrono::duration<double>(clock::now() - it->second.sent).count());
}

void publish_stage(self_ptr self, uint64_t id, ballot_batch batch) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return;
  it->second.outcomes.clear();
  for (auto& b : batch.ballots)
    it->second.outcomes.push_back(b.status);
  it->second.claimed = ballot_batch{};
  if (!enter_stage(self, id, 3, st.stages.publisher))
    return;
  self->request(st.stages.publisher, st.settings.stage_timeout, emit_atom::value, std::move(batch))
    .then(
      [self, id](caf::ok_atom) {
        leave_stage(self, id);
        complete(self, id);
      },
          [self, id](caf::error& err) { fail(self, id, "publisher", err); });
}

// The audit failed or never happened: undo the batch's fresh claims, then
// NACK, so the redelivery is not taken for a second vote. Without a dedup
// stage to ask the claims stay: they hold this message's fingerprint, so its
// redelivery resumes them. (A batch lost *at* the auditor keeps its claims
// too: whether that audit committed is unknown.)
void release_then_fail(self_ptr self, uint64_t id, const caf::error& err) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return;
  if (!st.stages.dedup || it->second.claimed.ballots.empty()) {
    fail(self, id, "auditor", err);
    return;
  }
  // From here the batch waits for the dedup stage: a lost auditor no longer
  // fails it while the release is pending (the release must land before the NACK).
  enter_stage(self, id, 1, st.stages.dedup);
  auto claimed = std::move(it->second.claimed);
  self
    ->request(st.stages.dedup, st.settings.stage_timeout, unclaim_atom::value, std::move(claimed))
    .then([self, id, err](caf::ok_atom) { fail(self, id, "auditor", err); },
          [self, id, err](caf::error&) { fail(self, id, "auditor", err); });
}

void audit_stage(self_ptr self, uint64_t id, ballot_batch batch) {
  auto& st = self->state;
  auto it = st.in_flight.find(id);
  if (it == st.in_flight.end())
    return;
  batch.processed_time_us = now_us();
  // Keep what releasing the fresh claims needs, should the audit fail.
  it->second.claimed.ballots.clear();
  for (auto& b : batch.ballots)
    if (b.claim == claim_result::fresh) {
      ballot c;
      c.content.voter_hash = b.content.voter_hash;
      c.content.fingerprint = b.content.fingerprint;
      c.claim = claim_result::fresh;
      it->second.claimed.ballots.push_back(std::move(c));
    }
  if (!st.stages.auditor) {
    // Known not audited: release the claims now rather than leave them to the redelivery.
    release_then_fail(self, id,
                      make_error(pipeline_errc::stage_unavailable,
                                 "no connection to the node serving it"));
    return;
  }
  enter_stage(self, id, 2, st.stages.auditor);
  self->request(st.stages.auditor, st.settings.stage_timeout, audit_atom::value, std::move(batch))
    .then(
      [self, id](ballot_batch& audited) {
        leave_stage(self, id);
        publish_stage(self, id, std::move(audited));
      },
      [self, id](caf::error& err) { release_then_fail(self, id, err); });
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  if (st.forming.ballots.empty())
    return;
  auto id = st.next_batch_id++;
  batch_in_flight rec;
  rec.epoch = st.epoch;
  rec.received = std::move(st.forming_received);
  for (auto& b : st.forming.ballots)
    rec.tags.push_back(b.delivery_tag);
  ballot_batch batch = std::move(st.forming);
  batch.id = id;
  batch.channel_epoch = st.epoch;
  batch.decided_by = st.settings.worker_id;
  st.forming = ballot_batch{};
  st.forming_received.clear();
  st.stats->batch_size(static_cast<double>(rec.tags.size()));
  st.in_flight.emplace(id, std::move(rec));
  if (!enter_stage(self, id, 0, st.stages.validator))
    return;
  self
    ->request(st.stages.validator, st.settings.stage_timeout, validate_atom::value,
              std::move(batch))
    .then(
      [self, id](ballot_batch& validated) {
        auto& st = self->state;
        leave_stage(self, id);
        if (!enter_stage(self, id, 1, st.stages.dedup))
          return;
        self
          ->request(st.stages.dedup, st.settings.stage_timeout, claim_atom::value,
                    std::move(validated))
          .then(
            [self, id](ballot_batch& claimed) {
              leave_stage(self, id);
              audit_stage(self, id, std::move(claimed));
            },
            [self, id](caf::error& err) { fail(self, id, "dedup stage", err); });
      },
      [self, id](caf::error& err) { fail(self, id, "validator", err); });
}

void log_malformed(self_ptr self, uint64_t tag, const malformed& m) {
  auto& st = self->state;
  auto now = clock::now();
  if (now - st.malformed_window >= std::chrono::seconds{1}) {
    if (st.malformed_suppressed > 0)
      st.log->warn("{} more malformed messages rejected in the last second (not logged one by "
                   "one)",
                   st.malformed_suppressed);
    st.malformed_window = now;
    st.malformed_logged = 0;
    st.malformed_suppressed = 0;
  }
  if (st.malformed_logged++ < 20)
    st.log->warn("rejected malformed message (delivery {}, {}): {}; not requeued", tag,
                 m.error_type, m.reason);
  else
    ++st.malformed_suppressed;
}

void take(self_ptr self, delivery&& d) {
  auto& st = self->state;
  auto received = clock::now();
  track(st, d.tag);
  auto fallback = d.amqp_timestamp_s ? *d.amqp_timestamp_s * 1000000 : now_us();
  auto decoded = decode_vote(d.body, fallback, st.settings.decode);
  if (auto* bad = std::get_if<malformed>(&decoded)) {
    st.stats->error(bad->error_type);
    st.stats->malformed_processed(
      std::chrono::duration<double>(clock::now() - received).count());
    log_malformed(self, d.tag, *bad);
    mark(st, d.tag, settlement::settled);
    if (st.source->reject(d.tag); st.source->healthy())
      flush_acks(self);
    return;
  }
  if (st.forming.ballots.empty())
    st.forming_since = self->clock().now();
  ballot b;
  b.content = std::move(std::get<vote>(decoded));
  if (!d.message_id.empty())
    // A publisher's message id tells apart two byte-identical submissions.
    b.content.fingerprint = fingerprint_of(d.message_id + '\n' + d.body);
  b.delivery_tag = d.tag;
  b.redelivered = d.redelivered;
  st.forming.ballots.push_back(std::move(b));
  st.forming_received.push_back(received);
}

caf::actor_addr stage_address(const pipeline_stages& stages, int k) {
  switch (k) {
    case 0:
      return stages.validator.address();
    case 1:
      return stages.dedup.address();
    case 2:
      return stages.auditor.address();
    default:
      return stages.publisher.address();
  }
}

const char* missing_stage(const pipeline_stages& stages) {
  if (!stages.validator)
    return "validator";
  if (!stages.dedup)
    return "dedup stage";
  if (!stages.auditor)
    return "auditor";
  if (!stages.publisher)
    return "publisher";
  return nullptr;
}

// New stage handles (a restart, a remote node lost or back). A batch waiting
// for a stage actor that is no longer ours would only time out: requeue it now.
void replace_stages(self_ptr self, pipeline_stages stages) {
  auto& st = self->state;
  st.stages = std::move(stages);
  std::vector<std::pair<uint64_t, int>> orphaned;
  for (auto& [id, rec] : st.in_flight)
    if (rec.at && rec.at != stage_address(st.stages, rec.stage))
      orphaned.emplace_back(id, rec.stage);
  for (auto [id, k] : orphaned)
    fail(self, id, stage_label[k],
         make_error(pipeline_errc::stage_unavailable, "the stage it was sent to is gone"));
}

// A stage is missing (its node is not connected): take nothing new, and once
// the batches in flight are settled give the prefetched deliveries back to
// the broker, so other ingress nodes can take them meanwhile.
void hold_for_stages(self_ptr self, const char* missing) {
  auto& st = self->state;
  if (!st.waiting_for_stages) {
    st.waiting_for_stages = true;
    st.stats->consuming(false);
    if (st.epoch == 0)
      st.log->info("waiting for the {} (its node is not connected yet) before consuming", missing);
    else
      st.log->warn("intake paused: the {} is not available (its node is not connected); votes "
                   "wait in the queue until it is back",
                   missing);
  }
  if (st.connected && st.in_flight.empty()) {
    auto held = st.unsettled.size();
    st.source->close();
    st.connected = false;
    st.unsettled.clear();
    st.forming = ballot_batch{};
    st.forming_received.clear();
    st.stats->in_flight(0);
    st.log->info("input channel closed while waiting: {} prefetched deliveries returned to "
                 "the queue",
                 held);
  }
}

void schedule_poll(self_ptr self, clock::duration delay) {
  if (delay <= clock::duration::zero())
    self->send(self, poll_atom::value);
  else
    self->delayed_send(self, delay, poll_atom::value);
}

void poll(self_ptr self) {
  auto& st = self->state;
  if (st.drained)
    return;
  // Pacing uses the actor clock (the deterministic one in tests); latency
  // metrics use the real clock.
  auto now = self->clock().now();
  if (!st.draining) {
    if (auto missing = missing_stage(st.stages)) {
      hold_for_stages(self, missing);
      schedule_poll(self, std::chrono::milliseconds{100});
      return;
    }
    if (st.waiting_for_stages) {
      st.waiting_for_stages = false;
      if (st.connected)
        st.stats->consuming(true);
      st.log->info("every stage is available again; resuming intake");
    }
  }
  if (!st.connected) {
    if (st.draining) {
      // Nothing can be acked without a channel; the broker has requeued it all.
      st.in_flight.clear();
      st.forming = ballot_batch{};
      finish_drain_if_done(self);
      return;
    }
    if (now < st.reconnect_at) {
      schedule_poll(self, st.reconnect_at - now);
      return;
    }
    if (auto r = st.source->open(); r.failed()) {
      st.source->close();
      auto delay = st.reconnect_backoff.next();
      st.reconnect_at = self->clock().now() + delay;
      st.stats->dependency_up("rabbitmq", false);
      st.log->warn("cannot consume: {}; retrying in {} ms", r.what(), delay.count());
      schedule_poll(self, delay);
      return;
    }
    st.connected = true;
    ++st.epoch;
    st.reconnect_backoff.reset();
    st.stats->dependency_up("rabbitmq", true);
    st.stats->consuming(true);
    st.log->info("consuming: batches of up to {} votes, closed after {} ms", st.settings.batch_size,
                 st.settings.batch_max_wait.count());
  }
  if (!st.draining && now < st.resume_at) {
    schedule_poll(self, st.resume_at - now);
    return;
  }
  // Wait for deliveries: until the forming batch is due, briefly while
  // batches are in flight (their answers queue behind this call), longer
  // when idle.
  std::chrono::microseconds wait;
  if (st.draining)
    wait = std::chrono::microseconds{0};
  else if (!st.forming.ballots.empty())
    wait = std::chrono::duration_cast<std::chrono::microseconds>(
      std::max(clock::duration::zero(), st.forming_since + st.settings.batch_max_wait - now));
  else
    wait = st.settings.idle_wait;
  // Stage answers queue behind this wait: keep it short while batches are out.
  if (!st.in_flight.empty())
    wait = std::min(wait, std::chrono::microseconds{1000});
  bool got_any = false;
  while (st.forming.ballots.size() < st.settings.batch_size) {
    auto d = st.source->next(got_any ? std::chrono::microseconds{0} : wait);
    if (!d)
      break;
    got_any = true;
    take(self, std::move(*d));
  }
  if (!st.source->healthy()) {
    lose_connection(self);
    schedule_poll(self, st.reconnect_backoff.next());
    return;
  }
  if (got_any)
    st.stats->in_flight(static_cast<double>(st.unsettled.size()));
  auto due = !st.forming.ballots.empty()
             && (st.forming.ballots.size() >= st.settings.batch_size || st.draining
                 || self->clock().now() >= st.forming_since + st.settings.batch_max_wait);
  if (due)
    dispatch(self);
  if (st.draining) {
    finish_drain_if_done(self);
    if (!st.drained)
      schedule_poll(self, std::chrono::milliseconds{1});
    return;
  }
  // While deliveries flow, poll again right away (behind any stage answers
  // already queued); otherwise the blocking wait above already paced us.
  auto idle = !got_any && !due;
  if (idle && st.settings.pace_idle_polls_with_clock)
    schedule_poll(self, std::chrono::microseconds{1});
  else
    schedule_poll(self, clock::duration::zero());
}

} // namespace

consumer_actor::behavior_type consumer(consumer_actor::stateful_pointer<consumer_state> self,
                                       std::shared_ptr<delivery_source> source,
                                       pipeline_stages stages, consumer_settings settings,
                                       std::shared_ptr<metrics> stats) {
  name_stage_thread(self, "vw-consumer");
  auto& st = self->state;
  st.source = std::move(source);
  st.stages = std::move(stages);
  st.settings = std::move(settings);
  st.stats = std::move(stats);
  st.reconnect_backoff = backoff{st.settings.backoff_initial, st.settings.backoff_max};
  st.failure_backoff = backoff{st.settings.backoff_initial, st.settings.backoff_max};
  self->send(self, poll_atom::value);
  return {
    [self](poll_atom) { poll(self); },
    [self](stages_atom, pipeline_stages& stages) { replace_stages(self, std::move(stages)); },
    [self](drain_atom) -> caf::result<drained_atom> {
      auto& st = self->state;
      st.drain_promise = self->make_response_promise<drained_atom>();
      if (!st.draining) {
        st.draining = true;
        st.stats->consuming(false);
        if (st.connected)
          if (auto r = st.source->cancel(); r.failed())
            st.log->warn("basic.cancel failed: {}", r.what());
        st.log->info("draining: consumer cancelled, finishing {} in-flight batches",
                     st.in_flight.size());
      }
      auto promise = st.drain_promise;
      finish_drain_if_done(self);
      return promise;
    },
  };
}

} // namespace vw
