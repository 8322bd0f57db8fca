#pragma once

#include <caf/make_message.hpp>
#include <caf/replies_to.hpp>
#include <caf/result.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_behavior.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <string>

#include "messages/atoms.hpp"

// The whole message protocol of the worker: every actor's interface, declared
// once. A stage answers a batch with the batch (or an error); the consumer
// drives each batch through the stages and acks its deliveries.
namespace vw {

// Checks each ballot's voter against valid_hashes; unknown voters become invalid.
// tick (all stages that own a connection): probe it while idle, for /readyz.
using validator_actor
  = caf::typed_actor<caf::replies_to<validate_atom, ballot_batch>::with<ballot_batch>,
                     caf::reacts_to<tick_atom>>;

// Claims each remaining ballot's voter atomically: valid, or duplicate with its count.
// Releases the fresh claims of a batch whose audit failed.
using dedup_actor
  = caf::typed_actor<caf::replies_to<claim_atom, ballot_batch>::with<ballot_batch>,
                     caf::replies_to<unclaim_atom, ballot_batch>::with<caf::ok_atom>>;

// Writes the batch's audit rows in one transaction; may demote a valid ballot
// the database already counted to duplicate.
using auditor_actor
  = caf::typed_actor<caf::replies_to<audit_atom, ballot_batch>::with<ballot_batch>,
                     caf::reacts_to<tick_atom>>;

// Publishes the batch to the output queues and answers once the broker
// confirmed it; later batches are published while it waits.
// poll: collect the broker's confirms (sent to itself while batches wait).
using publisher_actor
  = caf::typed_actor<caf::replies_to<emit_atom, ballot_batch>::with<caf::ok_atom>,
                     caf::reacts_to<poll_atom>, caf::reacts_to<tick_atom>>;

// The stages a batch goes through, in order.
struct pipeline_stages {
  validator_actor validator;
  dedup_actor dedup;
  auditor_actor auditor;
  publisher_actor publisher;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pipeline_stages& x) {
  return f(x.validator, x.dedup, x.auditor, x.publisher);
}

// What a node publishes on NODE_LISTEN_PORT: the stages it runs, by name
// ("auditor"), answered with the stage's current handle (a new one after a
// restart), or unknown_stage / stage_unavailable.
using node_directory_actor
  = caf::typed_actor<caf::replies_to<lookup_atom, std::string>::with<caf::strong_actor_ptr>>;

// The directory as its own node sees it. stages: the supervisor's update
// after each (re)start (local only: pipeline_stages never crosses the wire).
using node_directory_admin_actor
  = node_directory_actor::extend<caf::reacts_to<stages_atom, pipeline_stages>>;

// Finds a stage on another node: connects to host:port (TLS or not, as the
// node is configured) and asks that node's directory for the stage.
using remote_locator_actor
  = caf::typed_actor<caf::replies_to<lookup_atom, std::string, std::string, uint16_t>::with<
    caf::strong_actor_ptr>>;

// Owns the input channel: takes deliveries, drives batches, acks.
// poll: take the next deliveries. stages: use these (restarted) stages.
// drain: stop consuming, finish in-flight work, answer when done.
using consumer_actor = caf::typed_actor<caf::reacts_to<poll_atom>,
                                        caf::reacts_to<stages_atom, pipeline_stages>,
                                        caf::replies_to<drain_atom>::with<drained_atom>>;

// Polls the broker for validation_queue_size.
using queue_monitor_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

// Owns every other actor, restarts failed ones, runs the shutdown sequence.
// stop: answer once everything is closed in order. restart: respawn a child
// (sent to itself after a backoff). deadline: SHUTDOWN_TIMEOUT has passed.
using supervisor_actor
  = caf::typed_actor<caf::replies_to<stop_atom>::with<caf::ok_atom>,
                     caf::reacts_to<restart_atom, std::string>, caf::reacts_to<deadline_atom>>;

} // namespace vw
