#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

// A minimal HTTP/1.0 server for /metrics, /healthz and /readyz: one thread,
// one short request per connection. Nothing else is served.
namespace vw {

struct http_response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class http_server {
public:
  using handler = std::function<http_response(const std::string& path)>;

  http_server() = default;
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Binds and starts serving; throws std::runtime_error if it cannot bind.
  void start(const std::string& bind, uint16_t port, handler h);
  void stop();

private:
  void serve();
  void answer(int fd);

  int listener_ = -1;
  handler handler_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

// One GET against host:port; returns the status code, or 0 if unreachable.
int http_get_status(const std::string& host, uint16_t port, const std::string& path,
                    std::string* body = nullptr, int timeout_ms = 2000);

} // namespace vw
