// Authenticated links between nodes (NODE_TLS=required): mutual certificate
// checks against one CA. A peer with no certificate (plaintext), or with a
// certificate from another CA, cannot get a stage, so nothing it holds is
// processed; raw bytes on the node port are dropped; a TLS node refuses a
// plaintext node; and the node with the right certificate works.
#define CAF_SUITE node_tls
#include <caf/test/unit_test.hpp>

#include <cstdlib>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/distributed/nodes.hpp"

using namespace dist;

namespace {

void sh(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("command failed: " + cmd);
}

// ca, node-a, node-b (signed by ca); otherca, rogue (signed by otherca).
std::string make_pki() {
  auto dir = make_temp_dir("vw-node-pki");
  auto ca = [&](const std::string& name) {
    sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + name + " -keyout " + dir
       + "/" + name + ".key -out " + dir + "/" + name + ".pem 2>/dev/null");
  };
  auto leaf = [&](const std::string& name, const std::string& signer) {
    sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + dir + "/" + name
       + ".key -out " + dir + "/" + name + ".csr 2>/dev/null");
    sh("openssl x509 -req -in " + dir + "/" + name + ".csr -CA " + dir + "/" + signer
       + ".pem -CAkey " + dir + "/" + signer + ".key -CAcreateserial -days 2 -out " + dir + "/"
       + name + ".pem 2>/dev/null");
  };
  ca("ca");
  ca("otherca");
  leaf("node-a", "ca");
  leaf("node-b", "ca");
  leaf("rogue", "otherca");
  return dir;
}

env_map tls(const std::string& dir, const std::string& name, const std::string& ca = "ca") {
  return {{"NODE_TLS", "required"},
          {"NODE_TLS_CERT", dir + "/" + name + ".pem"},
          {"NODE_TLS_KEY", dir + "/" + name + ".key"},
          {"NODE_TLS_CA", dir + "/" + ca + ".pem"}};
}

env_map with(env_map a, const env_map& b) {
  for (auto& [k, v] : b)
    a[k] = v;
  return a;
}

// Sends bytes that are not a TLS handshake; true if the node closed the
// connection (or answered nothing) within the timeout.
bool garbage_dropped(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return false;
  }
  std::string junk(512, '\x01');
  junk.insert(0, "GET /lookup/auditor HTTP/1.0\r\n\r\n");
  auto sent = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
  bool closed = false;
  auto deadline = steady::now() + 5s;
  char buf[256];
  while (sent > 0 && steady::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed = true;
      break;
    }
  }
  ::close(fd);
  return closed;
}

} // namespace

CAF_TEST(only nodes with a certificate from the shared CA get a stage) {
  auto pki = make_pki();
  suite_stack s{"dist_tls", 12, 18220};
  const uint16_t tls_port = 18294, plain_port = 18295;
  CAF_REQUIRE(tcp_port_free(tls_port) && tcp_port_free(plain_port));
  s.declare_queues();
  std::vector<std::string> voters, bodies;
  for (int i = 0; i < 50; ++i) {
    voters.push_back(voter_hash(i));
    bodies.push_back(vote(voters.back(), 1, base_s() + i));
  }
  s.register_voters(voters);
  s.amqp.publish(s.validation_q, bodies);

  // A certificate its own CA did not sign stops start-up with one line.
  auto& misfit = s.add_worker("dist-tls-misfit", 18229,
                              with(auditor_node(18296), tls(pki, "rogue", "ca")));
  misfit.start();
  CAF_CHECK_EQUAL(misfit.wait_exit(10s).value_or(-1), 2);
  CAF_CHECK(contains(misfit.log(), "NODE_TLS_CERT is not signed by NODE_TLS_CA"));

  auto& auditor = s.add_worker("dist-tls-auditor", 18220,
                               with(auditor_node(tls_port), tls(pki, "node-a")));
  CAF_REQUIRE(s.start_and_wait(auditor));
  CAF_CHECK(wait_until(
    [&] { return contains(auditor.log(), "TLS, peers must present a certificate"); }, 10s));
  auto& plain_auditor = s.add_worker("dist-tls-plain-auditor", 18221, auditor_node(plain_port));
  CAF_REQUIRE(s.start_and_wait(plain_auditor));

  // Refused: a plaintext node, a node whose certificate another CA signed,
  // and a TLS node pointed at a plaintext node.
  auto& plain = s.add_worker("dist-tls-plain", 18222, ingress_node(tls_port));
  auto& rogue = s.add_worker("dist-tls-rogue", 18223,
                             with(ingress_node(tls_port), tls(pki, "rogue", "otherca")));
  auto& strict = s.add_worker("dist-tls-strict", 18224,
                              with(ingress_node(plain_port), tls(pki, "node-b")));
  for (auto* w : {&plain, &rogue, &strict})
    CAF_REQUIRE(s.start_and_wait(*w));
  for (auto* w : {&plain, &rogue, &strict})
    CAF_CHECK(wait_until([&] { return contains(w->log(), "cannot reach the remote auditor"); },
                         15s));
  CAF_CHECK(garbage_dropped(tls_port));
  std::this_thread::sleep_for(2000ms);
  // Nothing they hold was processed: no consumer, no row, no output.
  auto info = s.amqp.inspect(s.validation_q);
  CAF_REQUIRE(info.has_value());
  CAF_CHECK_EQUAL(info->consumers, 0u);
  CAF_CHECK_EQUAL(info->messages, 50u);
  CAF_CHECK_EQUAL(s.pg().scalar("SELECT count(*) FROM vote_audit"), 0);
  CAF_CHECK_EQUAL(outputs(s), 0);
  for (auto* w : {&plain, &rogue, &strict}) {
    auto m = metric_set::scrape(w->metrics_port());
    CAF_REQUIRE(m.has_value());
    CAF_CHECK_EQUAL(m->value("validation_worker_ready"), 0);
    CAF_CHECK_EQUAL(w->stop(20s).value_or(-1), 0);
  }
  CAF_CHECK(auditor.running());

  // The node with the right certificate gets the auditor and decides all.
  auto& good = s.add_worker("dist-tls-good", 18225,
                            with(ingress_node(tls_port), tls(pki, "node-b")));
  CAF_REQUIRE(s.start_and_wait(good));
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) == 50; }, 30s));
  std::this_thread::sleep_for(500ms);
  CAF_CHECK_EQUAL(s.pg().scalar("SELECT count(*) FROM vote_audit WHERE status = 'valid' AND "
                                "metadata->>'worker_id' = 'dist-tls-good'"),
                  50);
  CAF_CHECK(contains(good.log(), "using the remote auditor at 127.0.0.1:18294"));
  CAF_CHECK_EQUAL(good.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(auditor.stop(20s).value_or(-1), 0);
  CAF_CHECK_EQUAL(plain_auditor.stop(20s).value_or(-1), 0);
  sh("rm -rf " + pki);
}
