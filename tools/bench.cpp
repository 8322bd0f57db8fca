// Throughput, CPU, memory and latency of the worker against the local stack,
// next to a no-op forwarder with the same delivery guarantees measured in the
// same run (the broker's ceiling on this machine). Prints figures; asserts
// nothing. See README "Performance".
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infra/http_server.hpp"
#include "tools/proc_stats.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct options {
  size_t voters = 100000;
  size_t votes = 50000;
  int runs = 3;
  uint16_t prefetch = 500;
  size_t batch = 100;
  int latency_seconds = 5;
  size_t backlog = 0; // extra RSS run with this many queued messages
  bool prefill_only = false; // leave a backlog for profiling the worker by hand
  bool quick = false;
  bool sweep = false;
  std::string worker = VW_WORKER_BINARY;
  int redis_db = 13;
  std::string pg_db = "vw_bench";
  uint16_t metrics_port = 18990;
};

const std::string q_in = "bench.validation";
const std::string q_review = "bench.review";
const std::string q_agg = "bench.aggregation";
const std::string q_fwd = "bench.forwarded";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

std::string voter_hash(size_t i) {
  auto text = "voter-" + std::to_string(i);
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  char hex[65];
  for (int k = 0; k < 32; ++k)
    std::snprintf(hex + 2 * k, 3, "%02x", d[k]);
  return std::string{hex, 64};
}

double now_s() {
  return std::chrono::duration<double>(clock_type::now().time_since_epoch()).count();
}

int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// ---- RabbitMQ ---------------------------------------------------------------

class amqp {
public:
  amqp() {
    conn_ = amqp_new_connection();
    auto* sock = amqp_tcp_socket_new(conn_);
    if (amqp_socket_open(sock, "127.0.0.1", 5672) != AMQP_STATUS_OK)
      die("cannot connect to RabbitMQ on 127.0.0.1:5672 (run scripts/stack.sh up)");
    check(amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(conn_, 1);
    check(amqp_get_rpc_reply(conn_), "channel.open");
  }
  ~amqp() {
    amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
  amqp_connection_state_t raw() { return conn_; }

  static void check(amqp_rpc_reply_t r, const char* what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      die(std::string{"RabbitMQ "} + what + " failed");
  }
  void declare(const std::string& q) {
    amqp_queue_declare(conn_, 1, amqp_cstring_bytes(q.c_str()), 0, 1, 0, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(conn_), "queue.declare");
  }
  void purge(const std::string& q) {
    amqp_queue_purge(conn_, 1, amqp_cstring_bytes(q.c_str()));
    check(amqp_get_rpc_reply(conn_), "queue.purge");
  }
  void remove(const std::string& q) {
    amqp_queue_delete(conn_, 1, amqp_cstring_bytes(q.c_str()), 0, 0);
    check(amqp_get_rpc_reply(conn_), "queue.delete");
  }
  uint64_t depth(const std::string& q) {
    auto* ok = amqp_queue_declare(conn_, 1, amqp_cstring_bytes(q.c_str()), 1, 0, 0, 0,
                                  amqp_empty_table);
    check(amqp_get_rpc_reply(conn_), "queue.declare passive");
    return ok->message_count;
  }
  void confirm_mode() {
    amqp_confirm_select(conn_, 1);
    check(amqp_get_rpc_reply(conn_), "confirm.select");
  }
  void publish(const std::string& q, const std::string& body) {
    amqp_basic_properties_t props;
    std::memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    amqp_bytes_t b{body.size(), const_cast<char*>(body.data())};
    if (amqp_basic_publish(conn_, 1, amqp_empty_bytes, amqp_cstring_bytes(q.c_str()), 0, 0,
                           &props, b)
        != AMQP_STATUS_OK)
      die("basic.publish failed");
    ++published_;
  }
  // Waits until the broker confirmed everything published so far.
  void await_confirms() {
    while (confirmed_ < published_) {
      amqp_frame_t f;
      if (amqp_simple_wait_frame(conn_, &f) != AMQP_STATUS_OK)
        die("lost RabbitMQ while waiting for confirms");
      if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* a = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
        confirmed_ = a->multiple ? std::max(confirmed_, a->delivery_tag)
                                 : std::max(confirmed_, a->delivery_tag);
      } else if (f.frame_type == AMQP_FRAME_METHOD
                 && f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        die("the broker nacked a publish");
      }
    }
  }

private:
  amqp_connection_state_t conn_;
  uint64_t published_ = 0;
  uint64_t confirmed_ = 0;
};

// ---- Redis and PostgreSQL ------------------------------------------------------

class redis {
public:
  explicit redis(int db) {
    ctx_ = redisConnect("127.0.0.1", 6379);
    if (ctx_ == nullptr || ctx_->err)
      die("cannot connect to Redis on 127.0.0.1:6379");
    command({"SELECT", std::to_string(db)});
  }
  ~redis() { redisFree(ctx_); }
  void command(const std::vector<std::string>& argv) {
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (auto& s : argv) {
      a.push_back(s.data());
      l.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(a.size()), a.data(), l.data()));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR)
      die("Redis " + argv[0] + " failed");
    freeReplyObject(r);
  }
  void load_voters(size_t n) {
    command({"FLUSHDB"});
    std::vector<std::string> argv{"SADD", "valid_hashes"};
    for (size_t i = 1; i <= n; ++i) {
      argv.push_back(voter_hash(i));
      if (argv.size() == 10002 || i == n) {
        command(argv);
        argv.resize(2);
      }
    }
  }
  void reset_votes() {
    // voted_hashes, claim keys and duplicate counters go; valid_hashes stays.
    command({"EVAL",
             "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
             "redis.call('DEL', k) n = n + 1 end "
             "for _, k in ipairs(redis.call('KEYS', ARGV[2])) do redis.call('DEL', k) end "
             "redis.call('DEL', 'voted_hashes') return n",
             "0", "vote_claim:*", "duplicate_count:*"});
  }

private:
  redisContext* ctx_;
};

void pg_exec(const std::string& db, const std::string& sql) {
  // Quiet: re-applying the schema would print a NOTICE per existing relation.
  auto conninfo = "host=127.0.0.1 port=5432 user=election password=election "
                  "options='-c client_min_messages=warning' dbname="
                  + db;
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK)
    die("cannot connect to PostgreSQL database " + db + ": " + PQerrorMessage(c));
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    die("PostgreSQL: " + std::string{PQresultErrorMessage(r)});
  PQclear(r);
  PQfinish(c);
}

void prepare_database(const options& o) {
  PGconn* c = PQconnectdb("host=127.0.0.1 port=5432 user=election password=election dbname=election");
  if (PQstatus(c) != CONNECTION_OK)
    die(std::string{"cannot connect to PostgreSQL: "} + PQerrorMessage(c));
  PGresult* r = PQexec(c, ("SELECT 1 FROM pg_database WHERE datname = '" + o.pg_db + "'").c_str());
  bool exists = PQntuples(r) > 0;
  PQclear(r);
  if (!exists)
    PQclear(PQexec(c, ("CREATE DATABASE " + o.pg_db).c_str()));
  PQfinish(c);
  std::ifstream in{std::string{VW_SOURCE_DIR} + "/sql/schema.sql"};
  std::stringstream schema;
  schema << in.rdbuf();
  pg_exec(o.pg_db, schema.str());
}

// ---- workload ---------------------------------------------------------------

// The mix: 80 % first votes, 10 % repeats, 7 % unknown voters, 3 % malformed.
std::vector<std::string> make_votes(size_t n, size_t voters) {
  std::vector<std::string> out;
  out.reserve(n);
  size_t next_voter = 1;
  for (size_t i = 0; i < n; ++i) {
    auto slot = i % 100;
    std::string hash;
    if (slot < 80 || next_voter == 1)
      hash = voter_hash(((next_voter++ - 1) % voters) + 1);
    else if (slot < 90)
      hash = voter_hash((i * 7919) % (next_voter - 1) + 1);
    else if (slot < 97)
      hash = voter_hash(voters + 1 + i);
    else {
      out.push_back(slot == 97 ? "not json" : R"({"voter_hash":"short","candidate_id":1})");
      continue;
    }
    out.push_back(R"({"voter_hash":")" + hash + R"(","candidate_id":)" + std::to_string(i % 7 + 1)
                  + R"(,"election_id":1,"region_id":)" + std::to_string(i % 13)
                  + R"(,"vote_timestamp":"2026-12-03T10:00:00Z","nas":"123456789"})");
  }
  return out;
}

void prefill(const std::vector<std::string>& votes) {
  amqp a;
  a.confirm_mode();
  for (size_t i = 0; i < votes.size(); ++i) {
    a.publish(q_in, votes[i]);
    if (i % 2000 == 1999)
      a.await_confirms();
  }
  a.await_confirms();
}

// ---- the ceiling: a no-op forwarder with the same guarantees ------------------

double run_forwarder(size_t n, uint16_t prefetch, size_t batch) {
  amqp in, out;
  out.confirm_mode();
  amqp_basic_qos(in.raw(), 1, 0, prefetch, 0);
  amqp::check(amqp_get_rpc_reply(in.raw()), "basic.qos");
  amqp_basic_consume(in.raw(), 1, amqp_cstring_bytes(q_in.c_str()), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  amqp::check(amqp_get_rpc_reply(in.raw()), "basic.consume");
  size_t done = 0;
  double start = 0;
  std::vector<std::string> bodies;
  while (done < n) {
    bodies.clear();
    uint64_t last_tag = 0;
    while (bodies.size() < batch) {
      amqp_envelope_t env;
      timeval tv{0, bodies.empty() ? 200000 : 0};
      amqp_maybe_release_buffers(in.raw());
      auto r = amqp_consume_message(in.raw(), &env, &tv, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL)
        break;
      if (start == 0)
        start = now_s();
      bodies.emplace_back(static_cast<char*>(env.message.body.bytes), env.message.body.len);
      last_tag = env.delivery_tag;
      amqp_destroy_envelope(&env);
    }
    if (bodies.empty())
      continue;
    for (auto& b : bodies)
      out.publish(q_fwd, b);
    out.await_confirms();
    amqp_basic_ack(in.raw(), 1, last_tag, 1);
    done += bodies.size();
  }
  return static_cast<double>(n) / (now_s() - start);
}

// ---- the worker -----------------------------------------------------------------

struct worker_proc {
  pid_t pid = -1;

  worker_proc(const options& o, uint16_t prefetch, size_t batch, uint16_t port, int idx) {
    std::fflush(stdout); // the child must not inherit (and repeat) buffered output
    pid = fork();
    if (pid == 0) {
      auto dir = "/tmp/vw-bench-" + std::to_string(getppid());
      mkdir(dir.c_str(), 0700);
      if (chdir(dir.c_str()) != 0)
        _exit(127);
      auto log = dir + "/worker-" + std::to_string(idx) + ".log";
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "a", stderr);
      setenv("VALIDATION_QUEUE", q_in.c_str(), 1);
      setenv("REVIEW_QUEUE", q_review.c_str(), 1);
      setenv("AGGREGATION_QUEUE", q_agg.c_str(), 1);
      setenv("REDIS_DB", std::to_string(o.redis_db).c_str(), 1);
      setenv("POSTGRES_DB", o.pg_db.c_str(), 1);
      setenv("PREFETCH_COUNT", std::to_string(prefetch).c_str(), 1);
      setenv("BATCH_SIZE", std::to_string(batch).c_str(), 1);
      setenv("METRICS_PORT", std::to_string(port).c_str(), 1);
      setenv("METRICS_BIND", "127.0.0.1", 1);
      setenv("WORKER_ID", ("bench-" + std::to_string(idx)).c_str(), 1);
      setenv("LOG_LEVEL", "warn", 1);
      execl(o.worker.c_str(), o.worker.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~worker_proc() { stop(); }
  void stop() {
    if (pid <= 0)
      return;
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
  }
  double cpu_seconds() const { return vw::proc::cpu_seconds(pid); }
  double peak_rss_mb() const { return vw::proc::status_mb(pid, "VmHWM"); }
};

double processed_total(uint16_t port) {
  std::string body;
  if (vw::http_get_status("127.0.0.1", port, "/metrics", &body) != 200)
    return -1;
  double sum = 0;
  std::istringstream in{body};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("validation_votes_processed_total{", 0) == 0)
      sum += std::stod(line.substr(line.rfind(' ') + 1));
  return sum;
}

void wait_ready(uint16_t port) {
  auto deadline = clock_type::now() + 30s;
  while (vw::http_get_status("127.0.0.1", port, "/readyz") != 200) {
    if (clock_type::now() > deadline)
      die("the worker did not become ready within 30 s (see /tmp/vw-bench-*/worker-*.log)");
    std::this_thread::sleep_for(5ms);
  }
}

struct drain_result {
  double rate = 0;
  double cpu_us_per_vote = 0;
  double peak_rss_mb = 0;
};

drain_result run_workers(const options& o, size_t n, int count, uint16_t prefetch, size_t batch) {
  std::vector<std::unique_ptr<worker_proc>> workers;
  for (int i = 0; i < count; ++i)
    workers.push_back(std::make_unique<worker_proc>(o, prefetch, batch,
                                                    static_cast<uint16_t>(o.metrics_port + i), i));
  double start = now_s();
  for (int i = 0; i < count; ++i)
    wait_ready(static_cast<uint16_t>(o.metrics_port + i));
  std::vector<double> cpu0;
  for (auto& w : workers)
    cpu0.push_back(w->cpu_seconds());
  double ready = now_s();
  (void) start;
  auto deadline = clock_type::now() + 600s;
  for (;;) {
    double sum = 0;
    for (int i = 0; i < count; ++i)
      sum += std::max(0.0, processed_total(static_cast<uint16_t>(o.metrics_port + i)));
    if (sum >= static_cast<double>(n))
      break;
    if (clock_type::now() > deadline)
      die("the worker did not drain the backlog within 600 s");
    std::this_thread::sleep_for(10ms);
  }
  drain_result r;
  r.rate = static_cast<double>(n) / (now_s() - ready);
  double cpu = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    cpu += workers[i]->cpu_seconds() - cpu0[i];
    r.peak_rss_mb = std::max(r.peak_rss_mb, workers[i]->peak_rss_mb());
  }
  r.cpu_us_per_vote = cpu * 1e6 / static_cast<double>(n);
  for (auto& w : workers)
    w->stop();
  return r;
}

void reset_state(const options& o) {
  amqp a;
  for (auto& q : {q_in, q_review, q_agg, q_fwd}) {
    a.declare(q);
    a.purge(q);
  }
  redis{o.redis_db}.reset_votes();
  pg_exec(o.pg_db, "TRUNCATE vote_audit");
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

// One histogram of the worker's /metrics: bucket upper bound -> cumulative count.
struct histogram {
  std::vector<std::pair<double, double>> buckets;
  double sum = 0, count = 0;
  // The upper bound of the bucket holding quantile q (an upper estimate).
  double quantile(double q) const {
    for (auto& [le, n] : buckets)
      if (n >= q * count)
        return le;
    return buckets.empty() ? 0 : buckets.back().first;
  }
};

histogram scrape_histogram(const std::string& text, const std::string& name,
                           const std::string& label) {
  histogram h;
  std::istringstream in{text};
  std::string line;
  auto value = [](const std::string& l) { return std::stod(l.substr(l.rfind(' ') + 1)); };
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || (!label.empty() && line.find(label) == std::string::npos))
      continue;
    if (line.rfind(name + "_bucket", 0) == 0) {
      auto le = line.find("le=\"");
      auto end = line.find('"', le + 4);
      auto bound = line.substr(le + 4, end - le - 4);
      h.buckets.emplace_back(bound == "+Inf" ? 1e9 : std::stod(bound), value(line));
    } else if (line.rfind(name + "_sum", 0) == 0) {
      h.sum = value(line);
    } else if (line.rfind(name + "_count", 0) == 0) {
      h.count = value(line);
    }
  }
  return h;
}

// Where a batch's time goes inside the worker: each stage's round trip per
// batch (mean and p99 bucket), from the worker's own histograms.
std::string stage_times(uint16_t port) {
  std::string body;
  if (vw::http_get_status("127.0.0.1", port, "/metrics", &body) != 200)
    return {};
  std::string out = "  per batch inside the worker:";
  char buf[160];
  for (const char* stage : {"validator", "dedup", "auditor", "publisher"}) {
    auto h = scrape_histogram(body, "validation_stage_duration_seconds",
                              std::string{"stage=\""} + stage + "\"");
    if (h.count > 0) {
      std::snprintf(buf, sizeof(buf), " %s %.1f ms (p99 <= %.1f),", stage, 1000 * h.sum / h.count,
                    1000 * h.quantile(0.99));
      out += buf;
    }
  }
  auto batch = scrape_histogram(body, "validation_batch_size", "");
  if (batch.count > 0) {
    std::snprintf(buf, sizeof(buf), " %.0f votes per batch", batch.sum / batch.count);
    out += buf;
  }
  return out + "\n";
}

std::string latency_stage_times; // filled by measure_latency

// End-to-end latency at a fixed offered rate: publish time (carried in the
// message) to arrival on the aggregation queue.
std::vector<double> measure_latency(const options& o, double rate) {
  reset_state(o);
  worker_proc w{o, o.prefetch, o.batch, o.metrics_port, 0};
  wait_ready(o.metrics_port);
  std::atomic<bool> publishing{true};
  std::atomic<size_t> sent{0};
  std::vector<double> latencies_ms;
  std::thread receiver{[&] {
    amqp in;
    amqp_basic_qos(in.raw(), 1, 0, 1000, 0);
    amqp_basic_consume(in.raw(), 1, amqp_cstring_bytes(q_agg.c_str()), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    amqp::check(amqp_get_rpc_reply(in.raw()), "basic.consume");
    auto idle_since = clock_type::now();
    for (;;) {
      amqp_envelope_t env;
      timeval tv{0, 100000};
      amqp_maybe_release_buffers(in.raw());
      auto r = amqp_consume_message(in.raw(), &env, &tv, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        std::string body{static_cast<char*>(env.message.body.bytes), env.message.body.len};
        amqp_destroy_envelope(&env);
        auto at = body.find("\"sent_us\":");
        if (at != std::string::npos) {
          auto sent_us = std::stoll(body.substr(at + 10));
          latencies_ms.push_back(static_cast<double>(wall_us() - sent_us) / 1000.0);
        }
        idle_since = clock_type::now();
      } else if (!publishing && (latencies_ms.size() >= sent
                                 || clock_type::now() - idle_since > 5s)) {
        break;
      }
    }
  }};
  {
    amqp out;
    auto total = static_cast<size_t>(rate * o.latency_seconds);
    auto start = clock_type::now();
    for (size_t i = 0; i < total; ++i) {
      // Pace: message i leaves at start + i / rate.
      auto due = start + std::chrono::duration_cast<clock_type::duration>(
                           std::chrono::duration<double>(static_cast<double>(i) / rate));
      if (due > clock_type::now())
        std::this_thread::sleep_until(due);
      out.publish(q_in, R"({"voter_hash":")" + voter_hash(i % o.voters + 1)
                          + R"(","candidate_id":1,"sent_us":)" + std::to_string(wall_us()) + "}");
      ++sent;
    }
  }
  publishing = false;
  receiver.join();
  latency_stage_times = stage_times(o.metrics_port); // while the worker still runs
  return latencies_ms;
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto idx = static_cast<size_t>(p * static_cast<double>(xs.size() - 1));
  return xs[idx];
}

void usage() {
  std::puts(
    "usage: bench [--votes N] [--voters N] [--runs N] [--prefetch N] [--batch N]\n"
    "             [--latency-seconds S] [--backlog N] [--quick] [--prefill-only] [--sweep]\n"
    "             [--worker PATH]\n"
    "Needs the local stack (scripts/stack.sh up). Uses queues bench.*, Redis DB 13\n"
    "and the PostgreSQL database vw_bench.");
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--votes")
      o.votes = std::stoul(next());
    else if (a == "--voters")
      o.voters = std::stoul(next());
    else if (a == "--runs")
      o.runs = std::stoi(next());
    else if (a == "--prefetch")
      o.prefetch = static_cast<uint16_t>(std::stoul(next()));
    else if (a == "--batch")
      o.batch = std::stoul(next());
    else if (a == "--latency-seconds")
      o.latency_seconds = std::stoi(next());
    else if (a == "--backlog")
      o.backlog = std::stoul(next());
    else if (a == "--sweep")
      o.sweep = true;
    else if (a == "--prefill-only")
      o.prefill_only = true;
    else if (a == "--worker")
      o.worker = next();
    else if (a == "--quick") {
      o.quick = true;
      o.votes = 10000;
      o.runs = 1;
      o.latency_seconds = 2;
    } else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  std::printf("bench: %zu votes per run (80%% first, 10%% repeat, 7%% unknown, 3%% malformed), "
              "%zu registered voters, %d runs, prefetch %u, batch %zu\n",
              o.votes, o.voters, o.runs, o.prefetch, o.batch);
  {
    amqp a;
    for (auto& q : {q_in, q_review, q_agg, q_fwd})
      a.declare(q);
  }
  prepare_database(o);
  auto t = now_s();
  redis{o.redis_db}.load_voters(o.voters);
  std::printf("loaded %zu voters into valid_hashes in %.1f s\n", o.voters, now_s() - t);
  auto votes = make_votes(o.votes, o.voters);
  if (o.prefill_only) {
    reset_state(o);
    prefill(votes);
    std::printf("prefilled %zu votes into %s; run the worker with VALIDATION_QUEUE=%s "
                "REVIEW_QUEUE=%s AGGREGATION_QUEUE=%s REDIS_DB=%d POSTGRES_DB=%s\n",
                votes.size(), q_in.c_str(), q_in.c_str(), q_review.c_str(), q_agg.c_str(),
                o.redis_db, o.pg_db.c_str());
    return 0;
  }

  if (o.sweep) {
    // The trade-off behind the defaults: each setting against its own ceiling.
    std::printf("%8s %6s %14s %14s %6s %12s\n", "prefetch", "batch", "forwarder/s", "worker/s",
                "ratio", "us CPU/vote");
    // Each prefetch with batches of a tenth, a quarter and half of it: how
    // many batches can overlap in the stages is prefetch / batch.
    std::vector<std::pair<uint16_t, size_t>> grid;
    for (uint16_t prefetch : {50, 200, 500, 1000, 2000})
      for (size_t share : {10, 4, 2})
        grid.emplace_back(prefetch, prefetch / share);
    for (auto [prefetch, batch] : grid) {
      reset_state(o);
      prefill(votes);
      auto ceiling = run_forwarder(votes.size(), prefetch, batch);
      reset_state(o);
      prefill(votes);
      auto r = run_workers(o, votes.size(), 1, prefetch, batch);
      std::printf("%8u %6zu %14.0f %14.0f %6.2f %12.1f\n", prefetch, batch, ceiling, r.rate,
                  r.rate / ceiling, r.cpu_us_per_vote);
      std::fflush(stdout);
    }
    reset_state(o);
    return 0;
  }

  std::vector<double> ceilings, rates, cpus, rss, ratios;
  for (int run = 1; run <= o.runs; ++run) {
    reset_state(o);
    prefill(votes);
    auto ceiling = run_forwarder(votes.size(), o.prefetch, o.batch);
    reset_state(o);
    prefill(votes);
    auto r = run_workers(o, votes.size(), 1, o.prefetch, o.batch);
    std::printf("run %d: forwarder %.0f msg/s, worker %.0f votes/s (%.2f x), %.1f us CPU/vote, "
                "peak RSS %.1f MB\n",
                run, ceiling, r.rate, r.rate / ceiling, r.cpu_us_per_vote, r.peak_rss_mb);
    ceilings.push_back(ceiling);
    rates.push_back(r.rate);
    cpus.push_back(r.cpu_us_per_vote);
    rss.push_back(r.peak_rss_mb);
    ratios.push_back(r.rate / ceiling);
  }
  auto ceiling = median(ceilings);
  std::printf("\nmedian of %d: forwarder ceiling %.0f msg/s | worker %.0f votes/s | ratio %.2f | "
              "%.1f us CPU/vote | peak RSS %.1f MB\n",
              o.runs, ceiling, median(rates), median(ratios), median(cpus), median(rss));

  reset_state(o);
  prefill(votes);
  auto two = run_workers(o, votes.size(), 2, o.prefetch, o.batch);
  std::printf("two workers on one queue: %.0f votes/s together (%.2f x one worker)\n", two.rate,
              two.rate / median(rates));

  reset_state(o);
  prefill(votes);
  auto seed_forwarder = run_forwarder(votes.size(), 10, 10);
  reset_state(o);
  prefill(votes);
  auto seed = run_workers(o, votes.size(), 1, 10, 10);
  std::printf("at the seed's PREFETCH_COUNT=10: forwarder %.0f msg/s, worker %.0f votes/s "
              "(%.2f x), %.1f us CPU/vote\n",
              seed_forwarder, seed.rate, seed.rate / seed_forwarder, seed.cpu_us_per_vote);

  auto offered = ceiling / 2;
  auto lat = measure_latency(o, offered);
  std::printf("latency at %.0f votes/s offered for %d s (%zu votes): p50 %.1f ms, p95 %.1f ms, "
              "p99 %.1f ms, max %.1f ms\n",
              offered, o.latency_seconds, lat.size(), percentile(lat, 0.5), percentile(lat, 0.95),
              percentile(lat, 0.99), percentile(lat, 1.0));
  std::printf("%s", latency_stage_times.c_str());

  if (o.backlog > 0) {
    reset_state(o);
    std::vector<std::string> big;
    big.reserve(o.backlog);
    for (size_t i = 0; i < o.backlog; ++i)
      big.push_back(votes[i % votes.size()]);
    prefill(big);
    auto r = run_workers(o, big.size(), 1, o.prefetch, o.batch);
    std::printf("backlog of %zu: %.0f votes/s, peak RSS %.1f MB\n", o.backlog, r.rate,
                r.peak_rss_mb);
  }
  reset_state(o);
  amqp a;
  for (auto& q : {q_in, q_review, q_agg, q_fwd})
    a.remove(q);
  return 0;
}
