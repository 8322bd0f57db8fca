#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "infra/status.hpp"
#include "messages/vote.hpp"

// The narrow interfaces through which actors reach external systems. The real
// implementations wrap rabbitmq-c, hiredis and libpq; tests substitute fakes.
namespace vw {

// One message taken off the input queue, not yet decoded.
struct delivery {
  uint64_t tag = 0;
  bool redelivered = false;
  std::string body;
  std::optional<int64_t> amqp_timestamp_s; // the AMQP `timestamp` property
  std::string message_id;
};

// The input queue, as seen by the consumer (owner of the channel).
class delivery_source {
public:
  virtual ~delivery_source() = default;
  // Connects, declares the queues and starts consuming.
  virtual status open() = 0;
  // Waits up to `timeout` for the next delivery; nullopt on timeout. A broken
  // connection is reported through `healthy()`.
  virtual std::optional<delivery> next(std::chrono::microseconds timeout) = 0;
  virtual status ack(uint64_t tag, bool multiple) = 0;
  virtual status requeue(uint64_t tag) = 0;      // basic.nack, requeue
  virtual status reject(uint64_t tag) = 0;       // basic.reject, no requeue
  virtual status cancel() = 0;                   // stop the consumer, keep the channel
  virtual void close() = 0;
  virtual bool healthy() const = 0;
  virtual std::string last_error() const = 0;
};

// Redis SET valid_hashes.
class voter_registry {
public:
  virtual ~voter_registry() = default;
  // Sets known[i] to whether hashes[i] is a registered voter.
  virtual status known_voters(const std::vector<const std::string*>& hashes,
                              std::vector<bool>& known) = 0;
  // Checks the connection (PING) so readiness is true while idle too.
  virtual status probe() = 0;
};

// Redis SET voted_hashes and the claim keys: the atomic one-vote-per-voter claim.
class claim_store {
public:
  virtual ~claim_store() = default;
  // Claims every ballot whose status is pending; sets claim and, for taken
  // claims, duplicate_count. Atomic per voter.
  virtual status claim(std::vector<ballot>& ballots) = 0;
  // Releases the fresh claims of these ballots (used when the audit failed).
  virtual status release(const std::vector<ballot>& ballots) = 0;
};

// PostgreSQL vote_audit.
class audit_log {
public:
  virtual ~audit_log() = default;
  // Writes one row per decided ballot in one transaction. A valid ballot whose
  // row the database refused (a counted vote already exists) is turned into a
  // duplicate.
  virtual status record(std::vector<ballot>& ballots, int64_t processed_time_us,
                        const std::string& decided_by) = 0;
  virtual status probe() = 0;
};

// The output queues, with publisher confirms. Batches are sent without
// waiting for the previous ones' confirms, so the broker's confirm latency
// overlaps across batches. Sequence numbers grow across reconnections.
class vote_sink {
public:
  virtual ~vote_sink() = default;
  // Publishes every decided ballot of a batch and sets `last` to the sequence
  // number of its last message (0: nothing to publish). A failure loses every
  // message not yet confirmed, this batch's and earlier ones'.
  virtual status send(const std::vector<ballot>& ballots, int64_t processed_time_us,
                      const std::string& decided_by, uint64_t& last)
    = 0;
  // Waits up to `timeout` for confirms and sets `confirmed` to the sequence
  // number up to which every message was confirmed. A failure (nack, return,
  // closed channel, no confirm within the deadline) loses every message not
  // yet confirmed.
  virtual status await_confirms(std::chrono::microseconds timeout, uint64_t& confirmed) = 0;
  virtual status probe() = 0;
};

// The broker's view of the input queue, for validation_queue_size.
class queue_probe {
public:
  virtual ~queue_probe() = default;
  virtual std::optional<uint64_t> depth() = 0;
};

} // namespace vw
