#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "infra/config.hpp"
#include "infra/confirm_window.hpp"
#include "infra/ports.hpp"

typedef struct amqp_connection_state_t_* amqp_connection_state_t;

// RabbitMQ through rabbitmq-c: one connection and one channel per object,
// owned by exactly one actor (rabbitmq-c is not thread-safe).
namespace vw {

struct amqp_settings {
  std::string host;
  uint16_t port = 5672;
  std::string user;
  std::string pass;
  std::string vhost = "/";
  int heartbeat_s = 30;
  std::chrono::milliseconds timeout{10000};
  bool tls = false;
  std::string tls_ca_cert;
  std::string tls_cert;
  std::string tls_key;
  bool tls_verify = true;

  static amqp_settings from(const config& cfg);
};

// A connection with channel 1 open.
class amqp_session {
public:
  explicit amqp_session(amqp_settings s);
  ~amqp_session();
  amqp_session(const amqp_session&) = delete;
  amqp_session& operator=(const amqp_session&) = delete;

  status connect();
  void close();
  bool connected() const { return conn_ != nullptr && !broken_; }
  bool tls() const { return settings_.tls; }
  std::chrono::milliseconds timeout() const { return settings_.timeout; }
  void mark_broken(std::string why);
  const std::string& last_error() const { return last_error_; }
  amqp_connection_state_t raw() const { return conn_; }

  // Makes sure the durable queue exists without touching the arguments of a
  // queue that an existing deployment declared (passive declare first).
  status ensure_queue(const std::string& name);
  // Messages ready in the queue, by passive declare.
  std::optional<uint64_t> queue_depth(const std::string& name);

  // Turns the last RPC reply into a status, marking the session broken when
  // the channel or connection is gone.
  status check_rpc(const char* what);

private:
  status reopen_channel();

  amqp_settings settings_;
  amqp_connection_state_t conn_ = nullptr;
  bool broken_ = false;
  std::string last_error_;
};

// The input queue: basic.consume with manual acks and prefetch.
class amqp_delivery_source : public delivery_source {
public:
  amqp_delivery_source(amqp_settings s, std::string queue, uint16_t prefetch);

  status open() override;
  std::optional<delivery> next(std::chrono::microseconds timeout) override;
  status ack(uint64_t tag, bool multiple) override;
  status requeue(uint64_t tag) override;
  status reject(uint64_t tag) override;
  status cancel() override;
  void close() override;
  bool healthy() const override { return session_.connected(); }
  std::string last_error() const override { return session_.last_error(); }

private:
  status frame_status(int rc, const char* what);

  amqp_session session_;
  std::string queue_;
  uint16_t prefetch_;
  std::string consumer_tag_;
};

// The output queues, persistent messages, publisher confirms.
class amqp_vote_sink : public vote_sink {
public:
  amqp_vote_sink(amqp_settings s, std::string aggregation_queue, std::string review_queue,
                 std::string worker_id);

  status send(const std::vector<ballot>& ballots, int64_t processed_time_us,
              const std::string& decided_by, uint64_t& last) override;
  status await_confirms(std::chrono::microseconds timeout, uint64_t& confirmed) override;
  status probe() override;

private:
  status open();
  // Marks the session broken and forgets what it had outstanding.
  status lose(std::string why);

  struct sent_batch {
    uint64_t last;
    std::chrono::steady_clock::time_point at;
  };

  amqp_session session_;
  std::string aggregation_queue_;
  std::string review_queue_;
  std::string worker_id_;
  confirm_window confirms_;
  std::deque<sent_batch> outstanding_; // batches sent, not wholly confirmed: for the deadline
};

// validation_queue_size, from a connection of its own.
class amqp_queue_probe : public queue_probe {
public:
  amqp_queue_probe(amqp_settings s, std::string queue);
  std::optional<uint64_t> depth() override;

private:
  amqp_session session_;
  std::string queue_;
};

} // namespace vw
