#include "actors/publisher.hpp"
#include "actors/thread_name.hpp"

namespace vw {

namespace {

using self_ptr = publisher_actor::stateful_pointer<publisher_state>;

// Every unconfirmed batch is lost with the session: fail them all.
void fail_unconfirmed(self_ptr self, const status& why) {
  auto& st = self->state;
  st.stats->dependency_up("rabbitmq_publisher", false);
  st.health.report(why);
  auto err = make_error(pipeline_errc::publish_not_confirmed, why.what());
  for (auto& u : st.unconfirmed)
    u.promise.deliver(err);
  st.unconfirmed.clear();
}

// Answers the batches the broker confirmed, waiting up to `wait` for more.
void collect(self_ptr self, std::chrono::microseconds wait) {
  auto& st = self->state;
  if (st.unconfirmed.empty())
    return;
  st.health.touch();
  uint64_t confirmed = 0;
  if (auto r = st.sink->await_confirms(wait, confirmed); r.failed()) {
    fail_unconfirmed(self, r);
    return;
  }
  bool any = false;
  while (!st.unconfirmed.empty() && st.unconfirmed.front().last <= confirmed) {
    st.unconfirmed.front().promise.deliver(caf::ok_atom::value);
    st.unconfirmed.pop_front();
    any = true;
  }
  if (any) {
    st.stats->dependency_up("rabbitmq_publisher", true);
    st.health.report(status::ok());
  }
  // Come back for the rest behind whatever is in the mailbox (new batches).
  if (!st.unconfirmed.empty() && !st.polling) {
    st.polling = true;
    self->send(self, poll_atom::value);
  }
}

} // namespace

publisher_actor::behavior_type publisher(publisher_actor::stateful_pointer<publisher_state> self,
                                         std::shared_ptr<vote_sink> sink,
                                         std::shared_ptr<metrics> stats) {
  name_stage_thread(self, "vw-publisher");
  self->state.sink = std::move(sink);
  self->state.stats = std::move(stats);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      if (st.unconfirmed.empty())
        st.health.probe_when_idle([&] { return st.sink->probe(); }, *st.stats,
                                  "rabbitmq_publisher");
      self->delayed_send(self, stage_health::probe_interval, tick_atom::value);
    },
    [self](poll_atom) {
      self->state.polling = false;
      // Short: batches arriving meanwhile wait behind this.
      collect(self, std::chrono::microseconds{1000});
    },
    [self](emit_atom, const ballot_batch& batch) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      st.health.touch();
      uint64_t last = 0;
      if (auto r = st.sink->send(batch.ballots, batch.processed_time_us, batch.decided_by, last);
          r.failed()) {
        fail_unconfirmed(self, r);
        return make_error(pipeline_errc::publish_not_confirmed, r.what());
      }
      if (last == 0)
        return caf::ok_atom::value;
      auto promise = self->make_response_promise<caf::ok_atom>();
      st.unconfirmed.push_back({last, promise});
      collect(self, std::chrono::microseconds{0});
      return promise;
    },
  };
}

} // namespace vw
