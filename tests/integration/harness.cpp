// This file also holds the `harness` suite: self-tests of the helpers that
// need no server (so a broken helper cannot make the real suites lie).
#define CAF_SUITE harness
#include <caf/test/unit_test.hpp>

#include "tests/integration/harness.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#ifndef VW_WORKER_BINARY
#error "VW_WORKER_BINARY must be defined by the build"
#endif
#ifndef VW_SOURCE_DIR
#error "VW_SOURCE_DIR must be defined by the build"
#endif

namespace it {

namespace json = boost::json;

[[noreturn]] static void fail(const std::string& what) {
  throw std::runtime_error("integration harness: " + what);
}

// ---- sha256 (FIPS 180-4), enough for test data --------------------------------------

namespace {

constexpr std::array<uint32_t, 64> k256 = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

} // namespace

std::string sha256_hex(std::string_view data) {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string msg{data};
  uint64_t bit_len = static_cast<uint64_t>(data.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56)
    msg.push_back('\0');
  for (int i = 7; i >= 0; --i)
    msg.push_back(static_cast<char>((bit_len >> (i * 8)) & 0xff));
  for (size_t off = 0; off < msg.size(); off += 64) {
    std::array<uint32_t, 64> w{};
    for (int i = 0; i < 16; ++i) {
      auto b = [&](int j) { return static_cast<uint32_t>(static_cast<unsigned char>(msg[off + i * 4 + j])); };
      w[i] = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto [a, b, c, d, e, f, g, hh] = h;
    for (int i = 0; i < 64; ++i) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + k256[i] + w[i];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  char out[65];
  for (int i = 0; i < 8; ++i)
    std::snprintf(out + i * 8, 9, "%08x", h[i]);
  return std::string{out, 64};
}

std::string voter_hash(int i) {
  return sha256_hex("voter-" + std::to_string(i));
}

std::string unknown_hash(int i) {
  return sha256_hex("unknown-" + std::to_string(i));
}

// ---- utilities --------------------------------------------------------------------

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/vw-it-" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr)
    fail("mkdtemp failed: " + std::string{std::strerror(errno)});
  return buf.data();
}

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos)
      out.push_back(line);
  }
  return out;
}

std::vector<std::string> lines_containing(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  for (auto& l : lines_of(text))
    if (l.find(needle) != std::string::npos)
      out.push_back(l);
  return out;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

bool wait_until(const std::function<bool()>& pred, ms timeout, ms interval) {
  auto deadline = steady::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (steady::now() >= deadline)
      return false;
    std::this_thread::sleep_for(interval);
  }
}

int64_t now_unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

namespace {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool read_int(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size())
    return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

} // namespace

int64_t utc_us(int y, int mo, int d, int h, int mi, int s) {
  auto days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 86400) + h * 3600 + mi * 60 + s) * 1000000LL;
}

std::string iso_utc(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> parse_utc_iso8601_us(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !read_int(s, 0, 4, y) || s[4] != '-' || !read_int(s, 5, 2, mo)
      || s[7] != '-' || !read_int(s, 8, 2, d) || s[10] != 'T' || !read_int(s, 11, 2, h)
      || s[13] != ':' || !read_int(s, 14, 2, mi) || s[16] != ':' || !read_int(s, 17, 2, sec))
    return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (s[pos] == '.') {
    ++pos;
    int64_t scale = 100000;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      micros += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start)
      return std::nullopt;
  }
  auto rest = s.substr(pos);
  if (rest != "Z" && rest != "+00:00")
    return std::nullopt;
  return utc_us(y, mo, d, h, mi, sec) + micros;
}

bool tcp_port_free(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

json::object parse_object(const std::string& text) {
  json::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object())
    fail("not a JSON object: " + text);
  return std::move(v.as_object());
}

std::string str_field(const json::object& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->value().is_string())
    return {};
  return std::string{it->value().as_string()};
}

std::optional<int64_t> int_field(const json::object& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end())
    return std::nullopt;
  if (it->value().is_int64())
    return it->value().as_int64();
  if (it->value().is_uint64())
    return static_cast<int64_t>(it->value().as_uint64());
  return std::nullopt;
}

// ---- child registry: kill the workers if the test binary aborts --------------------

namespace {

constexpr int max_children = 32;
std::atomic<pid_t> child_pids[max_children];
char child_logs[max_children][256];

void on_abort(int) {
  for (int i = 0; i < max_children; ++i) {
    pid_t p = child_pids[i].load();
    if (p > 0) {
      kill(p, SIGKILL);
      const char prefix[] = "integration harness: killed worker, log kept at ";
      [[maybe_unused]] auto r1 = write(2, prefix, sizeof(prefix) - 1);
      [[maybe_unused]] auto r2 = write(2, child_logs[i], strnlen(child_logs[i], 255));
      [[maybe_unused]] auto r3 = write(2, "\n", 1);
    }
  }
}

int register_child(pid_t pid, const std::string& log) {
  static bool installed = [] {
    struct sigaction sa{};
    sa.sa_handler = on_abort;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGABRT, &sa, nullptr);
    return true;
  }();
  (void) installed;
  for (int i = 0; i < max_children; ++i) {
    pid_t expected = 0;
    if (child_pids[i].compare_exchange_strong(expected, pid)) {
      std::snprintf(child_logs[i], sizeof(child_logs[i]), "%s", log.c_str());
      return i;
    }
  }
  return -1;
}

void unregister_child(int slot) {
  if (slot >= 0)
    child_pids[slot].store(0);
}

int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

} // namespace

// ---- worker_process ---------------------------------------------------------------

worker_process::worker_process(std::string name, env_map env)
  : name_(std::move(name)), env_(std::move(env)) {
  dir_ = make_temp_dir(name_);
  log_path_ = dir_ + "/worker.log";
}

worker_process::~worker_process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = decode_status(status);
  }
  unregister_child(registry_slot_);
}

uint16_t worker_process::metrics_port() const {
  auto it = env_.find("METRICS_PORT");
  return it == env_.end() ? 8000 : static_cast<uint16_t>(std::atoi(it->second.c_str()));
}

void worker_process::start() {
  if (pid_ > 0)
    fail("worker " + name_ + " started twice");
  std::vector<std::string> env_strings;
  for (auto& [k, v] : env_)
    env_strings.push_back(k + "=" + v);
  for (const char* pass : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"})
    if (const char* v = std::getenv(pass); v != nullptr && env_.count(pass) == 0)
      env_strings.push_back(std::string{pass} + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  // VW_IT_WORKER runs the suites against another build of the worker
  // (a sanitizer build, a mutant); the default is the one built alongside.
  std::string binary = std::getenv("VW_IT_WORKER") != nullptr ? std::getenv("VW_IT_WORKER")
                                                               : VW_WORKER_BINARY;
  char* argv[] = {binary.data(), nullptr};
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    fail("cannot open " + log_path_);
  std::cout.flush();
  std::cerr.flush();
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    fail("fork failed");
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (chdir(dir_.c_str()) != 0)
      _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    for (int fd = 3; fd < 1024; ++fd)
      close(fd);
    execve(argv[0], argv, envp.data());
    const char msg[] = "integration harness: execve of the worker failed\n";
    [[maybe_unused]] auto r = write(2, msg, sizeof(msg) - 1);
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
  registry_slot_ = register_child(pid, log_path_);
}

bool worker_process::running() {
  if (pid_ <= 0 || exit_code_)
    return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    unregister_child(registry_slot_);
    registry_slot_ = -1;
    return false;
  }
  return true;
}

std::optional<int> worker_process::wait_exit(ms timeout) {
  if (pid_ <= 0)
    return std::nullopt;
  if (!wait_until([&] { return !running(); }, timeout, 10ms))
    dump_stacks();
  return exit_code_;
}

// A worker that does not exit when it should: its threads' stacks go into its
// log (printed with the failure), so a hang seen once in CI can be explained.
void worker_process::dump_stacks() {
  if (pid_ <= 0 || !running() || ::access("/usr/bin/gdb", X_OK) != 0)
    return;
  auto cmd = "timeout 60 /usr/bin/gdb -batch -nx -p " + std::to_string(pid_)
             + " -ex 'thread apply all bt' >> '" + log_path_ + "' 2>&1";
  std::string banner = "----- still running: stacks of every thread (gdb) -----\n";
  if (auto f = std::fopen(log_path_.c_str(), "a")) {
    std::fputs(banner.c_str(), f);
    std::fclose(f);
  }
  if (std::system(cmd.c_str()) != 0)
    std::fprintf(stderr, "harness: gdb could not read the stacks of pid %d\n", pid_);
}

void worker_process::send_signal(int sig) {
  if (pid_ > 0 && running())
    ::kill(pid_, sig);
}

void worker_process::kill_now() {
  send_signal(SIGKILL);
  wait_exit(10000ms);
}

std::optional<int> worker_process::stop(ms timeout) {
  terminate();
  auto code = wait_exit(timeout);
  if (!code)
    kill_now();
  return code;
}

std::string worker_process::log() const {
  return slurp(log_path_);
}

bool worker_process::wait_metrics(ms timeout) {
  return wait_until(
    [&] {
      if (!running())
        return true; // stop waiting; checked below
      return http_get(metrics_port(), "/metrics", 500ms).has_value();
    },
    timeout, 50ms)
         && running();
}

// ---- amqp_client ------------------------------------------------------------------

namespace {

constexpr uint16_t admin_channel = 1;
constexpr uint16_t publish_channel = 2;

amqp_bytes_t as_bytes(const std::string& s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

std::string to_string(amqp_bytes_t b) {
  return std::string{static_cast<const char*>(b.bytes), b.len};
}

std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return std::to_string(m->reply_code) + " " + to_string(m->reply_text);
      }
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed: " + std::to_string(m->reply_code) + " "
               + to_string(m->reply_text);
      }
      return "unexpected method " + std::to_string(r.reply.id);
  }
  return "?";
}

} // namespace

amqp_client::amqp_client() {
  connect();
}

amqp_client::~amqp_client() {
  if (conn_ != nullptr) {
    amqp_channel_close(conn_, publish_channel, AMQP_REPLY_SUCCESS);
    amqp_channel_close(conn_, admin_channel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
}

void amqp_client::connect() {
  conn_ = amqp_new_connection();
  auto* sock = amqp_tcp_socket_new(conn_);
  if (sock == nullptr)
    fail("amqp: cannot create socket");
  timeval tv{10, 0};
  if (int rc = amqp_socket_open_noblock(sock, "127.0.0.1", 5672, &tv); rc != AMQP_STATUS_OK)
    fail(std::string{"amqp: cannot connect to 127.0.0.1:5672: "} + amqp_error_string2(rc)
         + " (scripts/stack.sh up?)");
  amqp_set_handshake_timeout(conn_, &tv);
  amqp_set_rpc_timeout(conn_, &tv);
  auto login = amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (login.reply_type != AMQP_RESPONSE_NORMAL)
    fail("amqp: login failed: " + describe(login));
  open_channel(admin_channel);
  open_channel(publish_channel);
  amqp_confirm_select(conn_, publish_channel);
  check("confirm.select", publish_channel);
}

void amqp_client::open_channel(uint16_t ch) {
  amqp_channel_open(conn_, ch);
  check("channel.open", ch);
}

std::string amqp_client::check(const char* what, uint16_t ch, bool tolerate_channel_error) {
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return {};
  if (tolerate_channel_error && r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
      && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto text = describe(r);
    amqp_channel_close_ok_t ok{};
    amqp_send_method(conn_, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    open_channel(ch);
    return text.empty() ? std::string{"channel error"} : text;
  }
  fail(std::string{"amqp: "} + what + " failed: " + describe(r));
}

std::string amqp_client::declare(const std::string& queue, const amqp_args& args) {
  std::vector<amqp_table_entry_t> entries;
  std::vector<std::string> keep; // backing storage for keys and string values
  keep.reserve(args.size() * 2);
  for (auto& [k, v] : args) {
    amqp_table_entry_t e{};
    keep.push_back(k);
    e.key = as_bytes(keep.back());
    if (auto* i = std::get_if<int64_t>(&v)) {
      e.value.kind = AMQP_FIELD_KIND_I64;
      e.value.value.i64 = *i;
    } else {
      keep.push_back(std::get<std::string>(v));
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = as_bytes(keep.back());
    }
    entries.push_back(e);
  }
  amqp_table_t table;
  table.num_entries = static_cast<int>(entries.size());
  table.entries = entries.empty() ? nullptr : entries.data();
  amqp_queue_declare(conn_, admin_channel, as_bytes(queue), 0, 1, 0, 0, table);
  return check("queue.declare", admin_channel, true);
}

std::optional<queue_info> amqp_client::inspect(const std::string& queue) {
  auto* ok =
    amqp_queue_declare(conn_, admin_channel, as_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  auto err = check("queue.declare (passive)", admin_channel, true);
  if (!err.empty()) {
    if (err.rfind("404", 0) == 0)
      return std::nullopt;
    fail("amqp: passive declare of " + queue + ": " + err);
  }
  if (ok == nullptr)
    fail("amqp: passive declare of " + queue + " returned nothing");
  return queue_info{ok->message_count, ok->consumer_count};
}

int64_t amqp_client::count(const std::string& queue) {
  auto info = inspect(queue);
  return info ? static_cast<int64_t>(info->messages) : -1;
}

void amqp_client::purge(const std::string& queue) {
  amqp_queue_purge(conn_, admin_channel, as_bytes(queue));
  check("queue.purge", admin_channel, true);
}

void amqp_client::remove(const std::string& queue) {
  amqp_queue_delete(conn_, admin_channel, as_bytes(queue), 0, 0);
  check("queue.delete", admin_channel, true);
}

void amqp_client::declare_exchange(const std::string& exchange, const std::string& type) {
  amqp_exchange_declare(conn_, admin_channel, as_bytes(exchange), as_bytes(type), 0, 1, 0, 0,
                        amqp_empty_table);
  if (auto err = check("exchange.declare", admin_channel, true); !err.empty())
    fail("amqp: cannot declare exchange " + exchange + ": " + err);
}

void amqp_client::remove_exchange(const std::string& exchange) {
  amqp_exchange_delete(conn_, admin_channel, as_bytes(exchange), 0);
  check("exchange.delete", admin_channel, true);
}

void amqp_client::bind(const std::string& queue, const std::string& exchange,
                       const std::string& key) {
  amqp_queue_bind(conn_, admin_channel, as_bytes(queue), as_bytes(exchange), as_bytes(key),
                  amqp_empty_table);
  if (auto err = check("queue.bind", admin_channel, true); !err.empty())
    fail("amqp: cannot bind " + queue + " to " + exchange + ": " + err);
}

void amqp_client::publish(const std::string& queue, const std::vector<std::string>& bodies) {
  std::vector<outgoing> msgs;
  msgs.reserve(bodies.size());
  for (auto& b : bodies)
    msgs.push_back(outgoing{b, std::nullopt, true});
  publish(queue, msgs);
}

void amqp_client::publish(const std::string& queue, const std::vector<outgoing>& messages) {
  constexpr size_t chunk = 500;
  for (size_t i = 0; i < messages.size(); i += chunk) {
    for (size_t j = i; j < std::min(messages.size(), i + chunk); ++j) {
      auto& m = messages[j];
      amqp_basic_properties_t props;
      std::memset(&props, 0, sizeof(props));
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
      props.delivery_mode = m.persistent ? 2 : 1;
      props.content_type = amqp_cstring_bytes("application/json");
      if (m.timestamp) {
        props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        props.timestamp = *m.timestamp;
      }
      int rc = amqp_basic_publish(conn_, publish_channel, amqp_empty_bytes, as_bytes(queue), 0, 0,
                                  &props, as_bytes(m.body));
      if (rc != AMQP_STATUS_OK)
        fail(std::string{"amqp: basic.publish failed: "} + amqp_error_string2(rc));
      ++published_;
    }
    await_confirms(published_);
  }
}

void amqp_client::await_confirms(uint64_t last) {
  auto deadline = steady::now() + 30s;
  while (confirmed_ < last) {
    if (steady::now() >= deadline)
      fail("amqp: no publisher confirm within 30 s");
    timeval tv{1, 0};
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
      continue;
    if (rc != AMQP_STATUS_OK)
      fail(std::string{"amqp: waiting for confirms: "} + amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD)
      continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        // Confirms of one channel arrive in order; with `multiple` they cover
        // everything up to the tag.
        confirmed_ = std::max<uint64_t>(confirmed_, m->delivery_tag);
        break;
      }
      case AMQP_BASIC_NACK_METHOD:
        fail("amqp: the broker nacked a test message");
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        fail("amqp: the broker closed the publishing channel");
      default:
        break;
    }
  }
  amqp_maybe_release_buffers(conn_);
}

std::vector<amqp_message> amqp_client::take_all(const std::string& queue) {
  std::vector<amqp_message> out;
  for (;;) {
    auto r = amqp_basic_get(conn_, admin_channel, as_bytes(queue), 1);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      fail("amqp: basic.get on " + queue + ": " + describe(r));
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
      break;
    auto* ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
    amqp_message m;
    m.redelivered = ok->redelivered != 0;
    amqp_message_t msg;
    auto rr = amqp_read_message(conn_, admin_channel, &msg, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL)
      fail("amqp: reading a message of " + queue + ": " + describe(rr));
    m.body = to_string(msg.body);
    auto& p = msg.properties;
    if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
      m.delivery_mode = p.delivery_mode;
    if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
      m.content_type = to_string(p.content_type);
    if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
      m.message_id = to_string(p.message_id);
    if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG)
      m.timestamp = p.timestamp;
    amqp_destroy_message(&msg);
    amqp_maybe_release_buffers(conn_);
    out.push_back(std::move(m));
  }
  return out;
}

size_t amqp_client::bounce_as_redelivered(const std::string& queue) {
  size_t n = 0;
  for (;;) {
    auto r = amqp_basic_get(conn_, admin_channel, as_bytes(queue), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      fail("amqp: basic.get on " + queue + ": " + describe(r));
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
      break;
    amqp_message_t msg;
    auto rr = amqp_read_message(conn_, admin_channel, &msg, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL)
      fail("amqp: reading a message of " + queue + ": " + describe(rr));
    amqp_destroy_message(&msg);
    ++n;
  }
  amqp_channel_close(conn_, admin_channel, AMQP_REPLY_SUCCESS);
  open_channel(admin_channel);
  amqp_maybe_release_buffers(conn_);
  return n;
}

// ---- redis_client -----------------------------------------------------------------

namespace {

struct reply_deleter {
  void operator()(redisReply* r) const {
    if (r != nullptr)
      freeReplyObject(r);
  }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

} // namespace

redis_client::redis_client(int db) : db_(db) {
  timeval tv{5, 0};
  ctx_ = redisConnectWithTimeout("127.0.0.1", 6379, tv);
  if (ctx_ == nullptr || ctx_->err != 0)
    fail(std::string{"redis: cannot connect to 127.0.0.1:6379: "}
         + (ctx_ != nullptr ? ctx_->errstr : "out of memory") + " (scripts/stack.sh up?)");
  redisSetTimeout(ctx_, tv);
  reply_ptr r{command({"SELECT", std::to_string(db_)})};
}

redis_client::~redis_client() {
  if (ctx_ != nullptr)
    redisFree(ctx_);
}

redisReply* redis_client::command(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
    redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr)
    fail("redis: " + argv[0] + " failed: " + ctx_->errstr);
  if (r->type == REDIS_REPLY_ERROR) {
    std::string why{r->str, r->len};
    freeReplyObject(r);
    fail("redis: " + argv[0] + " refused: " + why);
  }
  return r;
}

void redis_client::flushdb() {
  reply_ptr r{command({"FLUSHDB"})};
}

void redis_client::sadd_bulk(const std::string& key, const std::vector<std::string>& members) {
  constexpr size_t chunk = 1000;
  size_t sent = 0;
  for (size_t i = 0; i < members.size(); i += chunk) {
    std::vector<const char*> args{"SADD", key.c_str()};
    std::vector<size_t> lens{4, key.size()};
    for (size_t j = i; j < std::min(members.size(), i + chunk); ++j) {
      args.push_back(members[j].data());
      lens.push_back(members[j].size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data())
        != REDIS_OK)
      fail("redis: cannot queue SADD");
    ++sent;
  }
  for (size_t i = 0; i < sent; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK)
      fail(std::string{"redis: pipelined SADD failed: "} + ctx_->errstr);
    reply_ptr r{static_cast<redisReply*>(raw)};
    if (r->type == REDIS_REPLY_ERROR)
      fail("redis: SADD refused: " + std::string{r->str, r->len});
  }
}

bool redis_client::sismember(const std::string& key, const std::string& member) {
  reply_ptr r{command({"SISMEMBER", key, member})};
  return r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

std::optional<std::string> redis_client::get(const std::string& key) {
  reply_ptr r{command({"GET", key})};
  if (r->type == REDIS_REPLY_STRING)
    return std::string{r->str, r->len};
  return std::nullopt;
}

long long redis_client::scard(const std::string& key) {
  reply_ptr r{command({"SCARD", key})};
  return r->integer;
}

long long redis_client::ttl(const std::string& key) {
  reply_ptr r{command({"TTL", key})};
  return r->integer;
}

bool redis_client::exists(const std::string& key) {
  reply_ptr r{command({"EXISTS", key})};
  return r->integer == 1;
}

std::vector<std::string> redis_client::keys(const std::string& pattern) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    reply_ptr r{command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"})};
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      fail("redis: unexpected SCAN reply");
    cursor = std::string{r->element[0]->str, r->element[0]->len};
    for (size_t i = 0; i < r->element[1]->elements; ++i)
      out.emplace_back(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
  } while (cursor != "0");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> redis_client::smembers(const std::string& key) {
  reply_ptr r{command({"SMEMBERS", key})};
  std::vector<std::string> out;
  for (size_t i = 0; i < r->elements; ++i)
    out.emplace_back(r->element[i]->str, r->element[i]->len);
  return out;
}

void redis_client::set(const std::string& key, const std::string& value) {
  reply_ptr r{command({"SET", key, value})};
}

long long redis_client::incr(const std::string& key) {
  reply_ptr r{command({"INCR", key})};
  return r->integer;
}

// ---- pg_client --------------------------------------------------------------------

namespace {

PGconn* pg_connect(const std::string& db) {
  const char* keys[] = {"host", "port", "dbname", "user", "password", "connect_timeout", nullptr};
  const char* values[] = {"127.0.0.1", "5432", db.c_str(), "election", "election", "5", nullptr};
  PGconn* c = PQconnectdbParams(keys, values, 0);
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    std::string why = c != nullptr ? PQerrorMessage(c) : "out of memory";
    if (c != nullptr)
      PQfinish(c);
    fail("postgres: cannot connect to database " + db + ": " + why);
  }
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  return c;
}

void pg_exec(PGconn* c, const std::string& sql) {
  PGresult* res = PQexec(c, sql.c_str());
  auto st = PQresultStatus(res);
  std::string why = PQresultErrorMessage(res);
  PQclear(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail("postgres: `" + sql.substr(0, 120) + "` failed: " + why);
}

} // namespace

std::string schema_sql_path() {
  return std::string{VW_SOURCE_DIR} + "/sql/schema.sql";
}

pg_client::pg_client(const std::string& database) : conn_(pg_connect(database)) {}

pg_client::~pg_client() {
  if (conn_ != nullptr)
    PQfinish(conn_);
}

std::vector<pg_row> pg_client::query(const std::string& sql,
                                     const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (auto& p : params)
    values.push_back(p.c_str());
  PGresult* res = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                               values.empty() ? nullptr : values.data(), nullptr, nullptr, 0);
  auto st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string why = PQresultErrorMessage(res);
    PQclear(res);
    fail("postgres: `" + sql + "` failed: " + why);
  }
  std::vector<pg_row> rows;
  int n = PQntuples(res), m = PQnfields(res);
  for (int i = 0; i < n; ++i) {
    pg_row r;
    for (int j = 0; j < m; ++j)
      r.push_back(PQgetisnull(res, i, j) ? std::nullopt
                                         : std::optional<std::string>{PQgetvalue(res, i, j)});
    rows.push_back(std::move(r));
  }
  PQclear(res);
  return rows;
}

void pg_client::exec(const std::string& sql) {
  pg_exec(conn_, sql);
}

long long pg_client::scalar(const std::string& sql, const std::vector<std::string>& params) {
  auto rows = query(sql, params);
  if (rows.size() != 1 || rows[0].empty() || !rows[0][0])
    fail("postgres: `" + sql + "` did not return one value");
  return std::stoll(*rows[0][0]);
}

std::map<std::string, long long> pg_client::count_by_status() {
  std::map<std::string, long long> out;
  for (auto& r : query("SELECT status, count(*) FROM vote_audit GROUP BY status"))
    out[r[0].value_or("<null>")] = std::stoll(r[1].value_or("0"));
  return out;
}

void pg_client::recreate_database(const std::string& name, bool apply_schema) {
  {
    PGconn* admin = pg_connect("election");
    try {
      pg_exec(admin, "DROP DATABASE IF EXISTS \"" + name + "\" WITH (FORCE)");
      pg_exec(admin, "CREATE DATABASE \"" + name + "\"");
    } catch (...) {
      PQfinish(admin);
      throw;
    }
    PQfinish(admin);
  }
  if (apply_schema) {
    auto sql = slurp(schema_sql_path());
    if (sql.empty())
      fail("cannot read " + schema_sql_path());
    pg_client db{name};
    db.exec(sql);
  }
}

void pg_client::drop_database(const std::string& name) {
  PGconn* admin = pg_connect("election");
  PGresult* res = PQexec(admin, ("DROP DATABASE IF EXISTS \"" + name + "\" WITH (FORCE)").c_str());
  PQclear(res);
  PQfinish(admin);
}

// ---- metrics ----------------------------------------------------------------------

std::optional<std::string> http_get(uint16_t port, const std::string& path, ms timeout) {
  auto deadline = steady::now() + timeout;
  auto left_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
      0, std::chrono::duration_cast<ms>(deadline - steady::now()).count()));
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return std::nullopt;
  struct closer {
    int fd;
    ~closer() { close(fd); }
  } guard{fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS)
      return std::nullopt;
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, left_ms()) <= 0)
      return std::nullopt;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return std::nullopt;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  size_t off = 0;
  while (off < req.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, left_ms()) <= 0)
      return std::nullopt;
    auto n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return std::nullopt;
    off += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[8192];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left_ms()) <= 0)
      return std::nullopt;
    auto n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0)
      return std::nullopt;
    if (n == 0)
      break;
    resp.append(buf, static_cast<size_t>(n));
  }
  auto header_end = resp.find("\r\n\r\n");
  if (header_end == std::string::npos)
    return std::nullopt;
  auto first_line = resp.substr(0, resp.find("\r\n"));
  if (first_line.find(" 200") == std::string::npos)
    return std::nullopt;
  auto body = resp.substr(header_end + 4);
  auto headers = resp.substr(0, header_end);
  std::transform(headers.begin(), headers.end(), headers.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (headers.find("transfer-encoding: chunked") != std::string::npos) {
    std::string decoded;
    size_t pos = 0;
    for (;;) {
      auto eol = body.find("\r\n", pos);
      if (eol == std::string::npos)
        return std::nullopt;
      auto size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
      if (size == 0)
        break;
      decoded.append(body, eol + 2, size);
      pos = eol + 2 + size + 2;
    }
    body = std::move(decoded);
  }
  return body;
}

metric_set metric_set::parse(const std::string& text) {
  metric_set out;
  for (auto& line : lines_of(text)) {
    if (line[0] == '#')
      continue;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ')
      ++pos;
    std::string name = line.substr(0, pos);
    label_map labels;
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        auto eq = line.find('=', pos);
        if (eq == std::string::npos)
          break;
        std::string key = line.substr(pos, eq - pos);
        pos = eq + 1;
        if (pos >= line.size() || line[pos] != '"')
          break;
        ++pos;
        std::string value;
        while (pos < line.size() && line[pos] != '"') {
          if (line[pos] == '\\' && pos + 1 < line.size()) {
            ++pos;
            value.push_back(line[pos] == 'n' ? '\n' : line[pos]);
          } else {
            value.push_back(line[pos]);
          }
          ++pos;
        }
        ++pos; // closing quote
        labels[key] = value;
        if (pos < line.size() && line[pos] == ',')
          ++pos;
      }
      ++pos; // '}'
    }
    while (pos < line.size() && line[pos] == ' ')
      ++pos;
    auto end = line.find(' ', pos);
    auto number = line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    char* stop = nullptr;
    double v = std::strtod(number.c_str(), &stop);
    if (number.empty() || stop == number.c_str())
      continue;
    out.samples_[name][labels] = v;
  }
  return out;
}

std::optional<metric_set> metric_set::scrape(uint16_t port) {
  auto body = http_get(port, "/metrics");
  if (!body)
    return std::nullopt;
  return parse(*body);
}

std::optional<double> metric_set::find(const std::string& name, const label_map& labels) const {
  auto it = samples_.find(name);
  if (it == samples_.end())
    return std::nullopt;
  auto jt = it->second.find(labels);
  if (jt == it->second.end())
    return std::nullopt;
  return jt->second;
}

double metric_set::value(const std::string& name, const label_map& labels) const {
  return find(name, labels).value_or(0.0);
}

std::map<std::string, double> metric_set::by_label(const std::string& name,
                                                   const std::string& label) const {
  std::map<std::string, double> out;
  auto it = samples_.find(name);
  if (it == samples_.end())
    return out;
  for (auto& [labels, v] : it->second)
    if (auto l = labels.find(label); l != labels.end())
      out[l->second] += v;
  return out;
}

// ---- suite_stack ------------------------------------------------------------------

suite_stack::suite_stack(std::string suite_name, int db, uint16_t ports, bool apply_schema)
  : suite(std::move(suite_name)),
    validation_q("it." + suite + "." + std::to_string(getpid()) + ".validation"),
    review_q("it." + suite + "." + std::to_string(getpid()) + ".review"),
    aggregation_q("it." + suite + "." + std::to_string(getpid()) + ".aggregation"),
    database("vw_it_" + suite),
    redis_db(db),
    port_base(ports),
    redis(db) {
  redis.flushdb();
  for (auto* q : {&validation_q, &review_q, &aggregation_q})
    amqp.remove(*q);
  pg_client::recreate_database(database, apply_schema);
}

suite_stack::~suite_stack() {
  bool failed = caf::test::engine::current_test() != nullptr
                && caf::test::engine::current_test()->bad() > 0;
  bool keep = failed || std::getenv("VW_IT_KEEP") != nullptr;
  for (auto& w : workers_)
    if (w->running())
      w->kill_now();
  if (failed)
    print_logs();
  try {
    for (auto* q : {&validation_q, &review_q, &aggregation_q})
      amqp.remove(*q);
    pg_.reset();
    if (!keep) {
      pg_client::drop_database(database);
      redis.flushdb();
    } else {
      std::cerr << "integration: kept database " << database << " and Redis DB " << redis_db
                << " for inspection\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "integration: cleanup of " << suite << " failed: " << e.what() << "\n";
  }
  if (!keep)
    for (auto& w : workers_) {
      std::error_code ec;
      std::filesystem::remove_all(w->dir(), ec);
    }
}

pg_client& suite_stack::pg() {
  if (!pg_)
    pg_ = std::make_unique<pg_client>(database);
  return *pg_;
}

env_map suite_stack::worker_env(const std::string& worker_id, uint16_t metrics_port) const {
  return {
    {"RABBITMQ_HOST", "127.0.0.1"},
    {"RABBITMQ_PORT", "5672"},
    {"RABBITMQ_USER", "guest"},
    {"RABBITMQ_PASS", "guest"},
    {"RABBITMQ_VHOST", "/"},
    {"VALIDATION_QUEUE", validation_q},
    {"REVIEW_QUEUE", review_q},
    {"AGGREGATION_QUEUE", aggregation_q},
    {"REDIS_HOST", "127.0.0.1"},
    {"REDIS_PORT", "6379"},
    {"REDIS_DB", std::to_string(redis_db)},
    {"POSTGRES_HOST", "127.0.0.1"},
    {"POSTGRES_PORT", "5432"},
    {"POSTGRES_DB", database},
    {"POSTGRES_USER", "election"},
    {"POSTGRES_PASSWORD", "election"},
    {"WORKER_ID", worker_id},
    {"METRICS_BIND", "127.0.0.1"},
    {"METRICS_PORT", std::to_string(metrics_port)},
    {"SHUTDOWN_TIMEOUT", "10"},
    {"LOG_LEVEL", "info"},
    {"LOG_FORMAT", "text"},
  };
}

worker_process& suite_stack::add_worker(const std::string& worker_id, uint16_t metrics_port,
                                        const env_map& overrides) {
  auto env = worker_env(worker_id, metrics_port);
  for (auto& [k, v] : overrides) {
    if (v == unset)
      env.erase(k);
    else
      env[k] = v;
  }
  workers_.push_back(std::make_unique<worker_process>(suite + "-" + worker_id, std::move(env)));
  return *workers_.back();
}

bool suite_stack::start_and_wait(worker_process& w, ms timeout) {
  if (!tcp_port_free(w.metrics_port()))
    fail("metrics port " + std::to_string(w.metrics_port()) + " is already taken");
  w.start();
  if (w.wait_metrics(timeout))
    return true;
  std::cerr << "integration: worker " << w.name() << " did not serve /metrics on port "
            << w.metrics_port() << " within " << timeout.count() << " ms (exit code "
            << (w.exit_code() ? std::to_string(*w.exit_code()) : std::string{"none"})
            << "); log:\n"
            << w.log() << "\n";
  return false;
}

void suite_stack::declare_queues() {
  for (auto* q : {&validation_q, &review_q, &aggregation_q}) {
    auto err = amqp.declare(*q, {{"x-expires", int64_t{1800000}}});
    if (!err.empty())
      fail("cannot declare " + *q + ": " + err);
  }
}

void suite_stack::register_voters(const std::vector<std::string>& hashes) {
  redis.sadd_bulk("valid_hashes", hashes);
}

double suite_stack::sum_metric(const std::vector<worker_process*>& workers,
                               const std::string& name, const label_map& labels) {
  double sum = 0;
  for (auto* w : workers) {
    auto m = metric_set::scrape(w->metrics_port());
    if (!m)
      return -1;
    sum += m->value(name, labels);
  }
  return sum;
}

void suite_stack::print_logs() const {
  for (auto& w : workers_) {
    auto text = w->log();
    constexpr size_t tail = 12000;
    std::cerr << "----- log of worker " << w->name() << " (" << w->log_path() << ")"
              << (text.size() > tail ? ", last 12000 bytes" : "") << " -----\n"
              << (text.size() > tail ? text.substr(text.size() - tail) : text)
              << "\n----- end of log -----\n";
  }
}

std::string set_diff(const std::set<std::string>& expected, const std::set<std::string>& actual) {
  std::vector<std::string> missing, extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                      std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                      std::back_inserter(extra));
  if (missing.empty() && extra.empty())
    return {};
  auto sample = [](const std::vector<std::string>& xs) {
    std::string out;
    for (size_t i = 0; i < xs.size() && i < 3; ++i)
      out += (i ? ", " : "") + xs[i];
    return out + (xs.size() > 3 ? ", ..." : "");
  };
  return std::to_string(missing.size()) + " missing [" + sample(missing) + "], "
         + std::to_string(extra.size()) + " unexpected [" + sample(extra) + "]";
}

std::multimap<std::string, std::pair<amqp_message, json::object>>
index_by_voter(const std::vector<amqp_message>& msgs) {
  std::multimap<std::string, std::pair<amqp_message, json::object>> out;
  for (auto& m : msgs) {
    json::error_code ec;
    auto v = json::parse(m.body, ec);
    json::object obj;
    if (!ec && v.is_object())
      obj = std::move(v.as_object());
    auto key = str_field(obj, "voter_hash");
    out.emplace(key, std::make_pair(m, std::move(obj)));
  }
  return out;
}

} // namespace it

// ---- self-tests of the harness -------------------------------------------------------

CAF_TEST(sha256 matches the FIPS 180-4 test vectors) {
  using it::sha256_hex;
  CAF_CHECK_EQUAL(sha256_hex(""),
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CAF_CHECK_EQUAL(sha256_hex("abc"),
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CAF_CHECK_EQUAL(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CAF_CHECK_EQUAL(sha256_hex(std::string(1000, 'a')),
                  "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
  // as `echo -n voter-1 | sha256sum`
  CAF_CHECK_EQUAL(it::voter_hash(1),
                  "6d2c8fcf57e0aa6334044224a48a264f92afab3de1bc2e57ce1b2d8e5dfaf7e5");
}

CAF_TEST(metrics text is parsed per name and labels) {
  auto m = it::metric_set::parse(
    "# HELP validation_votes_processed_total Deliveries decided\n"
    "# TYPE validation_votes_processed_total counter\n"
    "validation_votes_processed_total{status=\"valid\"} 152\n"
    "validation_votes_processed_total{status=\"malformed\"} 1.8e+01\n"
    "redis_operations_total{operation=\"claim\",status=\"success\"} 7\n"
    "redis_operations_total{status=\"error\",operation=\"claim\"} 2\n"
    "validation_queue_size 0\n"
    "validation_processing_latency_seconds_bucket{le=\"+Inf\"} 222\n");
  CAF_CHECK_EQUAL(m.value("validation_votes_processed_total", {{"status", "valid"}}), 152);
  CAF_CHECK_EQUAL(m.value("validation_votes_processed_total", {{"status", "malformed"}}), 18);
  CAF_CHECK_EQUAL(m.value("validation_votes_processed_total", {{"status", "invalid"}}), 0);
  CAF_CHECK(!m.find("validation_votes_processed_total", {{"status", "invalid"}}).has_value());
  CAF_CHECK_EQUAL(m.value("redis_operations_total", {{"operation", "claim"}, {"status", "error"}}),
                  2);
  auto by_status = m.by_label("redis_operations_total", "status");
  CAF_CHECK_EQUAL(by_status["success"], 7);
  CAF_CHECK_EQUAL(by_status["error"], 2);
  CAF_CHECK(m.find("validation_queue_size") == std::optional<double>{0.0});
  CAF_CHECK_EQUAL(m.value("validation_processing_latency_seconds_bucket", {{"le", "+Inf"}}), 222);
}

CAF_TEST(timestamps and set differences) {
  CAF_CHECK_EQUAL(it::parse_utc_iso8601_us("2026-03-01T10:30:00.000000Z").value_or(-1),
                  it::utc_us(2026, 3, 1, 10, 30, 0));
  CAF_CHECK_EQUAL(it::parse_utc_iso8601_us("2026-03-01T10:30:00.5+00:00").value_or(-1),
                  it::utc_us(2026, 3, 1, 10, 30, 0) + 500000);
  CAF_CHECK(!it::parse_utc_iso8601_us("2026-03-01T12:30:00+02:00").has_value());
  CAF_CHECK(!it::parse_utc_iso8601_us("2026-03-01T10:30:00").has_value());
  CAF_CHECK_EQUAL(it::iso_utc(it::utc_us(2026, 3, 1, 8, 0, 5) / 1000000), "2026-03-01T08:00:05Z");
  CAF_CHECK_EQUAL(it::utc_us(1970, 1, 1, 0, 0, 1), 1000000);
  CAF_CHECK_EQUAL(it::set_diff({"a", "b"}, {"a", "b"}), "");
  CAF_CHECK_EQUAL(it::set_diff({"a", "b"}, {"b", "c"}), "1 missing [a], 1 unexpected [c]");
  CAF_CHECK_EQUAL(it::lines_of("one\n\n  \ntwo\r\n").size(), 2u);
}
