#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vw {

// A node that publishes stages: REMOTE_<STAGE>=host:port.
struct node_endpoint {
  std::string host;
  uint16_t port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

// The pipeline stages after the consumer, in order.
inline const std::vector<std::string> stage_names = {"validator", "dedup", "auditor", "publisher"};

// Everything the worker reads from its environment (and `.env`). The only
// config reader in the project; every knob is listed in `.env.example`.
struct config {
  // RabbitMQ
  std::string rabbitmq_host = "localhost";
  uint16_t rabbitmq_port = 5672;
  std::string rabbitmq_user = "guest";
  std::string rabbitmq_pass = "guest";
  std::string rabbitmq_vhost = "/";
  std::string validation_queue = "votes.validation";
  std::string review_queue = "votes.review";
  std::string aggregation_queue = "votes.aggregation";
  uint16_t prefetch_count = 10;
  int rabbitmq_heartbeat_s = 30;
  bool rabbitmq_tls = false;
  std::string rabbitmq_tls_ca_cert; // empty: the system bundle
  std::string rabbitmq_tls_cert;    // client certificate (optional)
  std::string rabbitmq_tls_key;
  bool rabbitmq_tls_verify = true; // peer certificate and host name

  // Redis
  std::string redis_host = "localhost";
  uint16_t redis_port = 6379;
  int redis_db = 0;
  std::string redis_password;
  int redis_timeout_ms = 5000;
  int claim_ttl_s = 86400;

  // PostgreSQL
  std::string postgres_host = "localhost";
  uint16_t postgres_port = 5432;
  std::string postgres_db = "election";
  std::string postgres_user = "election";
  std::string postgres_password = "election";
  int postgres_timeout_ms = 10000;
  std::string postgres_sslmode = "prefer";
  std::string postgres_sslrootcert;

  // Worker
  std::string worker_id;
  std::string metrics_bind = "0.0.0.0";
  uint16_t metrics_port = 8000;
  size_t batch_size = 100;
  int batch_max_wait_ms = 5;
  size_t max_message_bytes = 1024;
  std::vector<std::string> pii_fields = {"nas", "code"};
  std::vector<std::string> audit_statuses = {"valid", "invalid", "duplicate"};
  int shutdown_timeout_s = 30;
  int stage_timeout_ms = 30000;
  int backoff_initial_ms = 200;
  int backoff_max_ms = 30000;
  int restart_max = 5;
  int restart_window_s = 60;
  int queue_poll_interval_ms = 1000;
  std::string log_level = "info";
  std::string log_format = "text";

  // Distributed nodes (README "Distributed nodes")
  bool node_ingress = true;                   // consume from RabbitMQ on this node
  std::vector<std::string> node_stages;       // stages run here (resolved; empty if all remote)
  uint16_t node_listen_port = 0;              // 0: publish nothing
  std::string node_listen_host = "127.0.0.1"; // address the node port binds
  std::map<std::string, node_endpoint> remote_stages; // stage -> node that serves it
  bool remote_fallback_local = false;         // run a local stage while a remote one is lost
  int node_link_timeout_ms = 5000;            // a silent peer is declared lost after this
  bool node_tls = false;                      // NODE_TLS=required: TLS with mutual certificates
  std::string node_tls_cert;
  std::string node_tls_key;
  std::string node_tls_ca;
  std::string node_tls_key_passphrase;

  bool audits(const std::string& status) const;
  // True if this node runs `stage` itself (always, or as a remote's fallback).
  bool runs_locally(const std::string& stage) const;
  // The effective configuration, one `NAME=value` per entry, secrets masked.
  std::vector<std::string> describe() const;
};

// A value that stops start-up; `what()` is one line naming the variable.
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Looks a variable up: the real environment first, then `.env`.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

// Reads `.env`-style `NAME=value` lines (comments, `export`, quotes allowed).
std::map<std::string, std::string> read_dotenv(const std::string& path);

// The process environment over the given `.env` values.
env_lookup process_env(std::map<std::string, std::string> dotenv);

// Builds and validates the configuration; throws config_error.
config load_config(const env_lookup& env);

} // namespace vw
