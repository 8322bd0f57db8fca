#pragma once

// Shared helpers of the integration suites: the worker as a child process and
// small RAII clients for RabbitMQ (rabbitmq-c), Redis (hiredis), PostgreSQL
// (libpq) and the worker's /metrics endpoint. Independent of the worker's own
// infra classes, so a bug there cannot hide itself in the tests.
//
// Every wait is bounded. Harness failures (a server unreachable, a broker
// error) throw std::runtime_error with a clear message; the test binary then
// terminates and the children die with it (PR_SET_PDEATHSIG + SIGABRT hook).

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <sys/types.h>

#include <boost/json.hpp>

typedef struct amqp_connection_state_t_* amqp_connection_state_t;
struct redisContext;
struct redisReply;
typedef struct pg_conn PGconn;

namespace it {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using env_map = std::map<std::string, std::string>;
using steady = std::chrono::steady_clock;

// ---- small utilities ---------------------------------------------------------

std::string sha256_hex(std::string_view data);
// A registered-looking voter hash: sha256("voter-<i>").
std::string voter_hash(int i);
// A hash of someone not registered: sha256("unknown-<i>").
std::string unknown_hash(int i);

std::string make_temp_dir(const std::string& prefix);
std::string slurp(const std::string& path);
// The non-empty lines of a text.
std::vector<std::string> lines_of(const std::string& text);
// Lines of `text` that contain `needle`.
std::vector<std::string> lines_containing(const std::string& text, const std::string& needle);
bool contains(const std::string& hay, const std::string& needle);

// Polls `pred` every `interval` until it holds or `timeout` passed.
bool wait_until(const std::function<bool()>& pred, ms timeout, ms interval = 50ms);

int64_t now_unix_us();
// Parses an ISO-8601 UTC timestamp ("...Z" or "...+00:00", optional fraction).
std::optional<int64_t> parse_utc_iso8601_us(std::string_view text);
// Microseconds since the epoch of a civil UTC date and time.
int64_t utc_us(int y, int mo, int d, int h, int mi, int s);
// 2026-03-01T08:00:00Z + seconds, as "YYYY-MM-DDTHH:MM:SSZ".
std::string iso_utc(int64_t unix_seconds);

bool tcp_port_free(uint16_t port);

// Parses a JSON object (throws if the text is not one).
boost::json::object parse_object(const std::string& text);
// obj[key] as string, or "" when absent / not a string.
std::string str_field(const boost::json::object& obj, const char* key);
// obj[key] as integer, or nullopt when absent / not an integer.
std::optional<int64_t> int_field(const boost::json::object& obj, const char* key);

// ---- the worker under test -----------------------------------------------------

class worker_process {
public:
  // `env` is the child's whole environment (nothing is inherited except
  // sanitizer options). The child runs in a fresh temp directory (so no
  // `.env` is read) with stdout and stderr appended to `dir()/worker.log`.
  worker_process(std::string name, env_map env);
  ~worker_process(); // SIGKILL + reap if still running
  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;

  void start();
  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  const std::string& log_path() const { return log_path_; }
  const env_map& env() const { return env_; }
  uint16_t metrics_port() const;

  // True while the child has not exited (reaps it if it has).
  bool running();
  // Waits up to `timeout` for the exit; the exit status, 128+signal when
  // killed by a signal, nullopt on timeout.
  std::optional<int> wait_exit(ms timeout);
  void dump_stacks();
  std::optional<int> exit_code() const { return exit_code_; }
  void send_signal(int sig);
  void terminate() { send_signal(SIGTERM); }
  void kill_now();
  // SIGTERM and wait; the exit code or nullopt (then SIGKILLed).
  std::optional<int> stop(ms timeout);

  std::string log() const;
  // Waits until GET /metrics answers 200; false on timeout or early exit.
  bool wait_metrics(ms timeout);

private:
  std::string name_;
  env_map env_;
  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  int registry_slot_ = -1;
};

// ---- RabbitMQ -------------------------------------------------------------------

struct amqp_message {
  std::string body;
  std::optional<uint8_t> delivery_mode;
  std::optional<std::string> content_type;
  std::optional<std::string> message_id;
  std::optional<uint64_t> timestamp;
  bool redelivered = false;
};

using amqp_arg = std::variant<int64_t, std::string>;
using amqp_args = std::map<std::string, amqp_arg>;

struct queue_info {
  uint32_t messages = 0;  // ready (not unacked)
  uint32_t consumers = 0;
};

struct outgoing {
  std::string body;
  std::optional<uint64_t> timestamp; // AMQP timestamp property, seconds
  bool persistent = true;
};

class amqp_client {
public:
  amqp_client(); // 127.0.0.1:5672, guest/guest, vhost "/"
  ~amqp_client();
  amqp_client(const amqp_client&) = delete;
  amqp_client& operator=(const amqp_client&) = delete;

  // Declares a durable queue; "" on success, else the broker's refusal
  // (e.g. "406 PRECONDITION_FAILED - inequivalent arg ...").
  std::string declare(const std::string& queue, const amqp_args& args = {});
  // Passive declare: nullopt if the queue does not exist.
  std::optional<queue_info> inspect(const std::string& queue);
  // Ready messages, -1 if the queue does not exist.
  int64_t count(const std::string& queue);
  void purge(const std::string& queue);
  void remove(const std::string& queue);
  void declare_exchange(const std::string& exchange, const std::string& type);
  void remove_exchange(const std::string& exchange);
  void bind(const std::string& queue, const std::string& exchange, const std::string& key);
  // Publishes to the default exchange with publisher confirms; returns once
  // the broker confirmed every message (throws on nack / timeout).
  void publish(const std::string& queue, const std::vector<outgoing>& messages);
  void publish(const std::string& queue, const std::vector<std::string>& bodies);
  // Takes (basic.get, auto-ack) every message currently in the queue.
  std::vector<amqp_message> take_all(const std::string& queue);
  // Takes every message without acking and closes the channel, as a consumer
  // that crashed: the broker requeues them with the redelivered flag set.
  size_t bounce_as_redelivered(const std::string& queue);

private:
  void connect();
  void open_channel(uint16_t ch);
  // Throws unless the last RPC succeeded; a channel error is returned as text
  // (and the channel reopened) when `tolerate_channel_error`.
  std::string check(const char* what, uint16_t ch, bool tolerate_channel_error = false);
  void await_confirms(uint64_t last);

  amqp_connection_state_t conn_ = nullptr;
  uint64_t published_ = 0;
  uint64_t confirmed_ = 0;
};

// ---- Redis ----------------------------------------------------------------------

class redis_client {
public:
  explicit redis_client(int db); // 127.0.0.1:6379, SELECT db
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  void flushdb();
  // SADD in chunks, pipelined.
  void sadd_bulk(const std::string& key, const std::vector<std::string>& members);
  bool sismember(const std::string& key, const std::string& member);
  std::optional<std::string> get(const std::string& key);
  long long scard(const std::string& key);
  long long ttl(const std::string& key);
  bool exists(const std::string& key);
  // Every key matching a glob pattern (SCAN).
  std::vector<std::string> keys(const std::string& pattern);
  std::vector<std::string> smembers(const std::string& key);
  void set(const std::string& key, const std::string& value);
  long long incr(const std::string& key);

private:
  redisReply* command(const std::vector<std::string>& argv);
  redisContext* ctx_ = nullptr;
  int db_;
};

// ---- PostgreSQL -----------------------------------------------------------------

using pg_row = std::vector<std::optional<std::string>>;

class pg_client {
public:
  explicit pg_client(const std::string& database); // 127.0.0.1:5432 as election
  ~pg_client();
  pg_client(const pg_client&) = delete;
  pg_client& operator=(const pg_client&) = delete;

  std::vector<pg_row> query(const std::string& sql, const std::vector<std::string>& params = {});
  void exec(const std::string& sql);
  long long scalar(const std::string& sql, const std::vector<std::string>& params = {});
  // status -> rows in vote_audit
  std::map<std::string, long long> count_by_status();

  // On the `election` maintenance database: DROP DATABASE IF EXISTS (FORCE),
  // CREATE DATABASE, and optionally apply VW_SOURCE_DIR/sql/schema.sql.
  static void recreate_database(const std::string& name, bool apply_schema);
  static void drop_database(const std::string& name);

private:
  PGconn* conn_ = nullptr;
};

std::string schema_sql_path();

// ---- metrics --------------------------------------------------------------------

// GET http://127.0.0.1:port/path; the body of a 200 answer, nullopt otherwise.
std::optional<std::string> http_get(uint16_t port, const std::string& path, ms timeout = 2000ms);

using label_map = std::map<std::string, std::string>;

class metric_set {
public:
  static std::optional<metric_set> scrape(uint16_t port);
  static metric_set parse(const std::string& text);

  // The sample's value; nullopt when the series is absent.
  std::optional<double> find(const std::string& name, const label_map& labels = {}) const;
  // The sample's value, 0 when absent (counters that never moved).
  double value(const std::string& name, const label_map& labels = {}) const;
  // For every series of `name`: value of `label` -> sample value.
  std::map<std::string, double> by_label(const std::string& name, const std::string& label) const;
  const std::map<std::string, std::map<label_map, double>>& samples() const { return samples_; }

private:
  std::map<std::string, std::map<label_map, double>> samples_;
};

// ---- one suite's isolated slice of the stack -----------------------------------

// Own queue names, Redis DB, PostgreSQL database and metrics ports. The
// destructor stops its workers, deletes the queues and the database, and
// prints the workers' logs if the current test failed.
class suite_stack {
public:
  suite_stack(std::string suite, int redis_db, uint16_t port_base, bool apply_schema = true);
  ~suite_stack();
  suite_stack(const suite_stack&) = delete;
  suite_stack& operator=(const suite_stack&) = delete;

  const std::string suite;
  const std::string validation_q;
  const std::string review_q;
  const std::string aggregation_q;
  const std::string database;
  const int redis_db;
  const uint16_t port_base;

  amqp_client amqp;
  redis_client redis;
  pg_client& pg();

  // The environment of a worker wired to this slice.
  env_map worker_env(const std::string& worker_id, uint16_t metrics_port) const;
  // Creates (not starts) a worker; `overrides` replace / add variables and a
  // value of "\x01unset" removes one.
  worker_process& add_worker(const std::string& worker_id, uint16_t metrics_port,
                             const env_map& overrides = {});
  // Starts it and waits for /metrics (fails the test with the log if not).
  bool start_and_wait(worker_process& w, ms timeout = 15000ms);

  // Declares the three queues durable with x-expires (so a crashed run does
  // not leave them behind forever).
  void declare_queues();
  // Loads registered voters into valid_hashes.
  void register_voters(const std::vector<std::string>& hashes);

  // Sum of one counter over the given workers' scrapes.
  static double sum_metric(const std::vector<worker_process*>& workers, const std::string& name,
                           const label_map& labels);

  void print_logs() const;

private:
  std::unique_ptr<pg_client> pg_;
  std::vector<std::unique_ptr<worker_process>> workers_;
};

inline constexpr const char* unset = "\x01unset";

// "" when equal, else a short description of what is missing and what is extra.
std::string set_diff(const std::set<std::string>& expected, const std::set<std::string>& actual);
// Counts of each element.
template <class Container>
std::map<std::string, int> histogram_of(const Container& xs) {
  std::map<std::string, int> out;
  for (auto& x : xs)
    ++out[x];
  return out;
}

// Drains `msgs` into a map keyed by voter_hash of their JSON bodies.
std::multimap<std::string, std::pair<amqp_message, boost::json::object>>
index_by_voter(const std::vector<amqp_message>& msgs);

} // namespace it

// CAF 0.17 prints a failed check (and its values) only at console verbosity 4
// (`-v 4`), which the ctest entries do not pass: without this a failing run
// would say "success: 98%" and nothing else. These two macros behave as CAF's
// own and additionally report a failure at the error level.
#if defined(CAF_CHECK) && defined(CAF_CHECK_FUNC)
#undef CAF_CHECK
#define CAF_CHECK(...)                                                                      \
  do {                                                                                      \
    bool it_ok_ = static_cast<bool>(__VA_ARGS__);                                           \
    static_cast<void>(::caf::test::detail::check(::caf::test::engine::current_test(),       \
                                                 __FILE__, __LINE__, #__VA_ARGS__, false,   \
                                                 it_ok_));                                  \
    if (!it_ok_)                                                                            \
      ::caf::test::logger::instance().error()                                               \
        << "!! FAILED " << __FILE__ << ":" << __LINE__ << ": " << #__VA_ARGS__ << '\n';     \
    ::caf::test::engine::last_check_file(__FILE__);                                         \
    ::caf::test::engine::last_check_line(__LINE__);                                         \
  } while (false)
#undef CAF_CHECK_FUNC
#define CAF_CHECK_FUNC(func, x_expr, y_expr)                                                \
  do {                                                                                      \
    func comparator;                                                                        \
    auto&& x_val___ = x_expr;                                                               \
    auto&& y_val___ = y_expr;                                                               \
    bool it_ok_ = comparator(x_val___, y_val___);                                           \
    static_cast<void>(::caf::test::detail::check(::caf::test::engine::current_test(),       \
                                                 __FILE__, __LINE__,                        \
                                                 CAF_FUNC_EXPR(func, x_expr, y_expr), false, \
                                                 it_ok_, x_val___, y_val___));              \
    if (!it_ok_)                                                                            \
      ::caf::test::logger::instance().error()                                               \
        << "!! FAILED " << __FILE__ << ":" << __LINE__ << ": "                              \
        << CAF_FUNC_EXPR(func, x_expr, y_expr) << ": " << x_val___ << " !! " << y_val___    \
        << '\n';                                                                            \
    ::caf::test::engine::last_check_file(__FILE__);                                         \
    ::caf::test::engine::last_check_line(__LINE__);                                         \
  } while (false)
#endif
