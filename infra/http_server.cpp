#include "infra/http_server.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace vw {

namespace {

const char* reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

void set_timeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    sent += static_cast<size_t>(n);
  }
}

} // namespace

http_server::~http_server() {
  stop();
}

void http_server::start(const std::string& bind, uint16_t port, handler h) {
  handler_ = std::move(h);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  auto port_text = std::to_string(port);
  if (int rc = getaddrinfo(bind.c_str(), port_text.c_str(), &hints, &res); rc != 0)
    throw std::runtime_error(std::string{"cannot resolve "} + bind + ": " + gai_strerror(rc));
  std::string why;
  for (auto* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      listener_ = fd;
      break;
    }
    why = std::strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(res);
  if (listener_ < 0)
    throw std::runtime_error(why.empty() ? "no usable address" : why);
  running_ = true;
  thread_ = std::thread{[this] { serve(); }};
}

void http_server::stop() {
  if (!running_.exchange(false))
    return;
  if (thread_.joinable())
    thread_.join();
  ::close(listener_);
  listener_ = -1;
}

void http_server::serve() {
  while (running_) {
    pollfd pfd{listener_, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0)
      continue;
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    set_timeouts(fd, 2000);
    answer(fd);
    ::close(fd);
  }
}

void http_server::answer(int fd) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    request.append(buf, static_cast<size_t>(n));
  }
  auto line_end = request.find("\r\n");
  auto first = request.substr(0, line_end);
  auto sp1 = first.find(' ');
  auto sp2 = first.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  http_response r;
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    r.status = 405;
    r.body = "bad request\n";
  } else if (first.substr(0, sp1) != "GET" && first.substr(0, sp1) != "HEAD") {
    r.status = 405;
    r.body = "only GET\n";
  } else {
    auto path = first.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto q = path.find('?'); q != std::string::npos)
      path.resize(q);
    r = handler_(path);
  }
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_of(r.status)
                     + "\r\nContent-Type: " + r.content_type
                     + "\r\nContent-Length: " + std::to_string(r.body.size())
                     + "\r\nConnection: close\r\n\r\n";
  send_all(fd, head);
  if (first.rfind("HEAD", 0) != 0)
    send_all(fd, r.body);
}

int http_get_status(const std::string& host, uint16_t port, const std::string& path,
                    std::string* body, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
    return 0;
  int fd = -1;
  for (auto* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
      continue;
    set_timeouts(fd, timeout_ms);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0)
    return 0;
  send_all(fd, "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n");
  std::string reply;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (reply.rfind("HTTP/", 0) != 0)
    return 0;
  auto sp = reply.find(' ');
  int status = std::atoi(reply.c_str() + sp + 1);
  if (body != nullptr) {
    auto split = reply.find("\r\n\r\n");
    *body = split == std::string::npos ? std::string{} : reply.substr(split + 4);
  }
  return status;
}

} // namespace vw
