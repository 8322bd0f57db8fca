#include "actors/queue_monitor.hpp"
#include "actors/thread_name.hpp"

namespace vw {

queue_monitor_actor::behavior_type
queue_monitor(queue_monitor_actor::stateful_pointer<queue_monitor_state> self,
              std::shared_ptr<queue_probe> probe, std::shared_ptr<metrics> stats,
              std::chrono::milliseconds interval) {
  name_stage_thread(self, "vw-queue-mon");
  self->state.probe = std::move(probe);
  self->state.stats = std::move(stats);
  self->state.interval = interval;
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      auto depth = st.probe->depth();
      if (depth) {
        st.stats->queue_size(static_cast<double>(*depth));
        if (!st.reachable)
          st.log->info("queue depth readable again");
      } else if (st.reachable) {
        st.log->warn("cannot read the input queue depth from RabbitMQ; "
                     "validation_queue_size keeps its last value, retrying every {} ms",
                     st.interval.count());
      }
      st.reachable = depth.has_value();
      self->delayed_send(self, st.interval, tick_atom::value);
    },
  };
}

} // namespace vw
