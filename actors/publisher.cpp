#include "actors/publisher.hpp"

namespace vw {

publisher_actor::behavior_type publisher(publisher_actor::stateful_pointer<publisher_state> self,
                                         std::shared_ptr<vote_sink> sink,
                                         std::shared_ptr<metrics> stats) {
  self->state.sink = std::move(sink);
  self->state.stats = std::move(stats);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      st.health.probe_when_idle([&] { return st.sink->probe(); }, *st.stats, "rabbitmq_publisher");
      self->delayed_send(self, stage_health::probe_interval, tick_atom::value);
    },
    [self](emit_atom, const ballot_batch& batch) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      st.health.touch();
      auto result = st.sink->publish(batch.ballots, batch.processed_time_us, batch.decided_by);
      st.stats->dependency_up("rabbitmq_publisher", !result.failed());
      st.health.report(result);
      if (result.failed())
        return make_error(pipeline_errc::publish_not_confirmed, result.what());
      return caf::ok_atom::value;
    },
  };
}

} // namespace vw
