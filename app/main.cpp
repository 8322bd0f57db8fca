// Wires the configuration to the supervisor and waits for SIGTERM/SIGINT.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/supervisor.hpp"
#include "infra/amqp.hpp"
#include "infra/backoff.hpp"
#include "infra/config.hpp"
#include "infra/exit_watchdog.hpp"
#include "infra/http_server.hpp"
#include "infra/log.hpp"
#include "infra/metrics.hpp"
#include "infra/node_tls.hpp"
#include "infra/postgres.hpp"
#include "infra/redis.hpp"

namespace {

// Waits up to `timeout` for a termination signal; true if one arrived.
bool wait_for_signal(const sigset_t& signals, std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  return sigtimedwait(&signals, nullptr, &ts) > 0;
}

// Start-up check of the audit table. Waits out an unreachable database;
// returns false (after saying what to run) only if the table is missing.
bool check_audit_table(const vw::config& cfg, const sigset_t& signals, bool& interrupted) {
  auto log = vw::stage_logger("main");
  vw::pg_connection db{vw::pg_settings::from(cfg)};
  vw::backoff retry{std::chrono::milliseconds{cfg.backoff_initial_ms},
                    std::chrono::milliseconds{cfg.backoff_max_ms}};
  vw::schema_check schema;
  for (;;) {
    auto st = db.connect();
    if (!st.failed())
      st = vw::check_schema(db, schema);
    if (!st.failed())
      break;
    auto delay = retry.next();
    log->warn("{}; waiting for PostgreSQL, retrying in {} ms", st.what(), delay.count());
    if (wait_for_signal(signals, delay)) {
      interrupted = true;
      return true;
    }
  }
  if (!schema.table_exists) {
    log->critical("table vote_audit does not exist in database {}: apply the schema with "
                  "`psql -h {} -p {} -U {} -d {} -f sql/schema.sql`, then start the worker again",
                  cfg.postgres_db, cfg.postgres_host, cfg.postgres_port, cfg.postgres_user,
                  cfg.postgres_db);
    return false;
  }
  if (!schema.unique_valid_index)
    log->warn("vote_audit has no unique index on valid votes, so the database alone cannot "
              "refuse a second counted vote; apply sql/schema.sql to add it");
  return true;
}

vw::infra_factory real_infra(const vw::config& cfg) {
  vw::infra_factory f;
  auto amqp = vw::amqp_settings::from(cfg);
  auto redis = vw::redis_settings::from(cfg);
  auto pg = vw::pg_settings::from(cfg);
  f.input = [=] {
    return std::make_shared<vw::amqp_delivery_source>(amqp, cfg.validation_queue,
                                                      cfg.prefetch_count);
  };
  f.voters = [=] { return std::make_shared<vw::redis_client>(redis); };
  f.claims = [=] { return std::make_shared<vw::redis_client>(redis); };
  f.audit = [=] { return std::make_shared<vw::pg_audit_log>(pg, cfg.worker_id, cfg.audit_statuses); };
  f.output = [=] {
    return std::make_shared<vw::amqp_vote_sink>(amqp, cfg.aggregation_queue, cfg.review_queue,
                                                cfg.worker_id);
  };
  f.queue_depth = [=] {
    return std::make_shared<vw::amqp_queue_probe>(amqp, cfg.validation_queue);
  };
  return f;
}

vw::supervisor_settings supervision(const vw::config& cfg) {
  using std::chrono::milliseconds;
  vw::supervisor_settings s;
  s.consumer.batch_size = cfg.batch_size;
  s.consumer.batch_max_wait = milliseconds{cfg.batch_max_wait_ms};
  s.consumer.stage_timeout = milliseconds{cfg.stage_timeout_ms};
  s.consumer.backoff_initial = milliseconds{cfg.backoff_initial_ms};
  s.consumer.backoff_max = milliseconds{cfg.backoff_max_ms};
  s.consumer.decode.max_message_bytes = cfg.max_message_bytes;
  s.consumer.decode.pii_fields = cfg.pii_fields;
  s.consumer.worker_id = cfg.worker_id;
  s.restart_max = cfg.restart_max;
  s.restart_window = std::chrono::seconds{cfg.restart_window_s};
  s.restart_backoff_initial = milliseconds{cfg.backoff_initial_ms};
  s.restart_backoff_max = milliseconds{cfg.backoff_max_ms};
  s.shutdown_timeout = std::chrono::seconds{cfg.shutdown_timeout_s};
  s.queue_poll_interval = milliseconds{cfg.queue_poll_interval_ms};
  s.ingress = cfg.node_ingress;
  s.local_stages = {cfg.node_stages.begin(), cfg.node_stages.end()};
  for (auto& [stage, at] : cfg.remote_stages)
    s.remote_stages[stage] = vw::remote_stage{at.host, at.port};
  s.remote_fallback_local = cfg.remote_fallback_local;
  return s;
}

bool uses_nodes(const vw::config& cfg) {
  return cfg.node_listen_port != 0 || !cfg.remote_stages.empty();
}

// The middleman (and, with NODE_TLS=required, CAF's OpenSSL module with this
// node's certificate, key and CA: peers must present a certificate that CA
// signed, and plaintext peers are refused).
void configure_nodes(const vw::config& cfg, caf::actor_system_config& caf_cfg) {
  if (!uses_nodes(cfg))
    return;
  caf_cfg.load<caf::io::middleman>();
  // Heartbeats on every node link, so a peer that goes silent (host down,
  // network partition, a frozen process: no TCP reset) is declared lost after
  // NODE_LINK_TIMEOUT_MS instead of never.
  auto timeout = std::chrono::milliseconds{cfg.node_link_timeout_ms};
  caf_cfg.set("middleman.heartbeat-interval",
              caf::timespan{std::max(std::chrono::milliseconds{100}, timeout / 5)});
  caf_cfg.set("middleman.connection-timeout", caf::timespan{timeout});
  // Nodes speak the message protocol of one build (messages/atoms.hpp): the
  // BASP handshake refuses a peer announcing another protocol version
  // instead of letting it misread type IDs. Bump with any message change.
  caf_cfg.set("middleman.app-identifiers",
              std::vector<std::string>{"validation-worker/protocol-1"});
  if (!cfg.node_tls)
    return;
  caf_cfg.load<caf::openssl::manager>();
  caf_cfg.openssl_certificate = cfg.node_tls_cert;
  caf_cfg.openssl_key = cfg.node_tls_key;
  caf_cfg.openssl_cafile = cfg.node_tls_ca;
  caf_cfg.openssl_passphrase = cfg.node_tls_key_passphrase;
}

caf::io::middleman_actor node_middleman(const vw::config& cfg, caf::actor_system& sys) {
  return cfg.node_tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
}

} // namespace

// `--health-check`: asks this host's worker (METRICS_PORT) whether it is ready.
int health_check(const vw::config& cfg) {
  std::string body;
  int status = vw::http_get_status("127.0.0.1", cfg.metrics_port, "/readyz", &body);
  std::printf("%s\n", status == 0 ? "worker not reachable" : body.c_str());
  return status == 200 ? 0 : 1;
}

int main(int argc, char** argv) {
  bool check_only = argc > 1 && std::string{argv[1]} == "--health-check";
  if (argc > 1 && !check_only) {
    std::fprintf(stderr, "usage: %s [--health-check]\n"
                         "Configuration comes from the environment and ./.env "
                         "(see .env.example).\n", argv[0]);
    return 2;
  }
  // Signals are taken by sigtimedwait in this thread only.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  vw::config cfg;
  try {
    cfg = vw::load_config(vw::process_env(vw::read_dotenv(".env")));
  } catch (const vw::config_error& e) {
    std::fprintf(stderr, "validation-worker: %s\n", e.what());
    return 2;
  }
  if (check_only)
    return health_check(cfg);
  vw::setup_logging(cfg.worker_id, cfg.log_format, cfg.log_level);
  auto log = vw::stage_logger("main");
  std::string effective;
  for (auto& entry : cfg.describe())
    effective += (effective.empty() ? "" : " ") + entry;
  log->info("starting validation worker: {}", effective);

  auto stats = std::make_shared<vw::metrics>();
  try {
    stats->serve(cfg.metrics_bind, cfg.metrics_port);
  } catch (const std::exception& e) {
    log->critical("cannot serve /metrics on {}:{}: {}; set METRICS_PORT to a free port",
                  cfg.metrics_bind, cfg.metrics_port, e.what());
    return 1;
  }

  if (cfg.node_tls) {
    if (auto problem = vw::check_node_tls(cfg.node_tls_cert, cfg.node_tls_key, cfg.node_tls_ca,
                                          cfg.node_tls_key_passphrase);
        !problem.empty()) {
      log->critical("{}; fix the node certificates (see README \"Distributed nodes\")", problem);
      return 2;
    }
  }
  stats->node_role(cfg.node_ingress);
  if (cfg.remote_fallback_local)
    for (auto& [stage, at] : cfg.remote_stages)
      log->info("REMOTE_FALLBACK=local: while {} is away a local {} stands in, using {}; it must "
                "be the same server the node at {} uses",
                at.text(), stage,
                stage == "auditor" ? "PostgreSQL " + cfg.postgres_host + ":"
                                       + std::to_string(cfg.postgres_port) + "/" + cfg.postgres_db
                : stage == "publisher"
                  ? "RabbitMQ " + cfg.rabbitmq_host + ":" + std::to_string(cfg.rabbitmq_port)
                  : "Redis " + cfg.redis_host + ":" + std::to_string(cfg.redis_port) + " db "
                      + std::to_string(cfg.redis_db),
                at.text());

  bool interrupted = false;
  if (cfg.runs_locally("auditor") && !check_audit_table(cfg, signals, interrupted))
    return 1;
  if (interrupted) {
    log->info("stopped before start-up finished");
    return 0;
  }

  caf::actor_system_config caf_cfg;
  caf_cfg.add_message_types<caf::id_block::vote_worker>();
  caf_cfg.add_error_category(vw::pipeline_error_category,
                             [](uint8_t code, caf::atom_value, const caf::message&) {
                               return vw::to_string(static_cast<vw::pipeline_errc>(code));
                             });
  // The stages are detached actors blocking on their own threads; what runs on
  // the scheduler (supervisor, node directory, the middleman's BASP broker and
  // remote proxies) wakes rarely. CAF's default work-stealing workers spin and
  // nap-poll between wake-ups: with a remote auditor that cost about 35 us of
  // CPU per vote across the two nodes and a third of the drain rate on two
  // cores (build/tests/distributed_tests -s hop_cost). Sharing workers sleep
  // on a condition variable instead.
  caf_cfg.set("scheduler.policy", caf::atom("sharing"));
  configure_nodes(cfg, caf_cfg);
  // Bounds the teardown after a finished shutdown. CAF 0.17's ~actor_system
  // waits without limit until every detached actor's object is released;
  // after a forced stop with a frozen peer node it was seen (3 runs in 111,
  // under load) to wait on the consumer forever. When this is armed the
  // supervisor has closed RabbitMQ, Redis and PostgreSQL, unacked deliveries
  // are back with the broker and nothing durable is left to do. Declared
  // before `sys` so that it outlives it.
  constexpr std::chrono::seconds teardown_grace{2};
  vw::exit_watchdog teardown{teardown_grace, [teardown_grace](int code) {
                               vw::stage_logger("main")->warn(
                                 "actor system teardown still waiting after {} s (a detached "
                                 "actor was not released); the shutdown had finished, exiting "
                                 "now with code {}",
                                 teardown_grace.count(), code);
                               std::_Exit(code);
                             }};
  caf::actor_system sys{caf_cfg};
  auto settings = supervision(cfg);
  // Node actors live outside the supervisor; they are stopped before `sys` goes.
  std::vector<caf::actor> node_actors;
  struct stop_node_actors {
    std::vector<caf::actor>& actors;
    ~stop_node_actors() {
      for (auto& a : actors)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  } node_guard{node_actors};
  if (!cfg.remote_stages.empty()) {
    settings.locator = sys.spawn(vw::remote_locator, node_middleman(cfg, sys),
                                 std::chrono::milliseconds{cfg.stage_timeout_ms});
    node_actors.push_back(caf::actor_cast<caf::actor>(settings.locator));
  }
  if (cfg.node_listen_port != 0) {
    std::set<std::string> served{cfg.node_stages.begin(), cfg.node_stages.end()};
    settings.directory = sys.spawn(vw::node_directory, served);
    node_actors.push_back(caf::actor_cast<caf::actor>(settings.directory));
    // Peers see only the lookup interface.
    auto published = caf::actor_cast<vw::node_directory_actor>(settings.directory);
    auto port = cfg.node_tls ? caf::openssl::publish(published, cfg.node_listen_port,
                                                      cfg.node_listen_host.c_str(), true)
                             : sys.middleman().publish(published, cfg.node_listen_port,
                                                       cfg.node_listen_host.c_str(), true);
    if (!port) {
      log->critical("cannot publish this node's stages on {}:{}: {}; set NODE_LISTEN_PORT to a "
                    "free port (and NODE_LISTEN_HOST to a local address)",
                    cfg.node_listen_host, cfg.node_listen_port, sys.render(port.error()));
      return 1;
    }
    std::string list;
    for (auto& stage : served)
      list += (list.empty() ? "" : ", ") + stage;
    log->info("serving {} to other nodes on {}:{} ({})", list, cfg.node_listen_host, *port,
              cfg.node_tls ? "TLS, peers must present a certificate signed by NODE_TLS_CA"
                           : "plaintext: keep this port on a private network");
  }
  auto exit_code = std::make_shared<std::atomic<int>>(-1);
  auto sup = sys.spawn(vw::supervisor, settings, real_infra(cfg), stats, exit_code);
  if (cfg.node_ingress)
    log->info("worker {} running; http://{}:{}/metrics, /healthz and /readyz", cfg.worker_id,
              cfg.metrics_bind, cfg.metrics_port);
  else
    log->info("stage node {} running (no intake); http://{}:{}/metrics, /healthz and /readyz",
              cfg.worker_id, cfg.metrics_bind, cfg.metrics_port);

  while (exit_code->load() < 0)
    if (wait_for_signal(signals, std::chrono::milliseconds{250}))
      break;
  if (exit_code->load() >= 0) {
    teardown.arm(exit_code->load());
    return exit_code->load();
  }

  log->info("termination signal received");
  int code = 0;
  caf::scoped_actor self{sys};
  self
    ->request(sup, std::chrono::seconds{cfg.shutdown_timeout_s + 5}, vw::stop_atom::value)
    .receive([&](caf::ok_atom) { code = 0; },
             [&](caf::error& err) {
               log->error("shutdown did not complete: {}", sys.render(err));
               code = 1;
             });
  teardown.arm(code);
  return code;
}
