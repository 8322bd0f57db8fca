#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"
#include "infra/backoff.hpp"
#include "infra/log.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"
#include "infra/vote_codec.hpp"

namespace vw {

struct consumer_settings {
  size_t batch_size = 100;
  std::chrono::milliseconds batch_max_wait{5};
  std::chrono::milliseconds stage_timeout{30000};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds idle_wait{50};
  // Pace polls that found nothing with the actor clock instead of an
  // immediate self-send. The blocking wait on the socket already paces the
  // real consumer, and the clock costs a timer-thread wake-up per poll; the
  // deterministic test coordinator needs it because it re-runs an actor with
  // mail before any other.
  bool pace_idle_polls_with_clock = false;
  std::string worker_id; // stamped on each batch: audit rows and outputs name this worker
  decode_options decode;
};

// A batch between dispatch and its ack.
struct batch_in_flight {
  uint64_t epoch = 0;
  std::vector<uint64_t> tags;
  std::vector<std::chrono::steady_clock::time_point> received;
  std::vector<verdict> outcomes;
  ballot_batch claimed; // kept to release fresh claims if the audit fails
  int stage = 0;         // where the batch is: index in stage order
  caf::actor_addr at;    // the stage actor it waits for
  std::chrono::steady_clock::time_point sent{};
};

struct consumer_state {
  using clock = std::chrono::steady_clock;

  std::shared_ptr<delivery_source> source;
  pipeline_stages stages;
  consumer_settings settings;
  std::shared_ptr<metrics> stats;
  std::shared_ptr<spdlog::logger> log = stage_logger("consumer");
  backoff reconnect_backoff{std::chrono::milliseconds{200}, std::chrono::milliseconds{30000}};
  backoff failure_backoff{std::chrono::milliseconds{200}, std::chrono::milliseconds{30000}};

  bool connected = false;
  uint64_t epoch = 0; // bumped per (re)connection: older delivery tags are void
  clock::time_point reconnect_at{};
  clock::time_point resume_at{};

  ballot_batch forming;
  std::vector<clock::time_point> forming_received;
  clock::time_point forming_since{};
  uint64_t next_batch_id = 1;
  std::map<uint64_t, batch_in_flight> in_flight;
  // Deliveries not acked yet, by tag. Tags on a channel are consecutive, so
  // this is a window starting at `unsettled_base`.
  enum class settlement : uint8_t { pending, ack, settled };
  std::deque<settlement> unsettled;
  uint64_t unsettled_base = 0;

  bool waiting_for_stages = false; // intake stopped: a (remote) stage is missing

  bool draining = false;
  bool drained = false;
  caf::typed_response_promise<drained_atom> drain_promise;

  clock::time_point malformed_window{};
  int malformed_logged = 0;
  int malformed_suppressed = 0;

  static inline const char* name = "consumer";
};

// Takes deliveries off the input queue, decodes them, rejects malformed ones,
// drives batches of ballots through the stages and acks each delivery once
// its effects are durable. Spawned detached: it blocks on the AMQP socket.
consumer_actor::behavior_type consumer(consumer_actor::stateful_pointer<consumer_state> self,
                                       std::shared_ptr<delivery_source> source,
                                       pipeline_stages stages, consumer_settings settings,
                                       std::shared_ptr<metrics> stats);

} // namespace vw
