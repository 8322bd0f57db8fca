#include "infra/node_tls.hpp"

#include <cstring>
#include <memory>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

namespace vw {

namespace {

std::string openssl_error() {
  std::string out;
  while (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string{buf};
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int passphrase_cb(char* buf, int size, int, void* user) {
  auto* pass = static_cast<const std::string*>(user);
  auto n = std::min<size_t>(pass->size(), static_cast<size_t>(size) - 1);
  std::memcpy(buf, pass->data(), n);
  buf[n] = '\0';
  return static_cast<int>(n);
}

} // namespace

std::string check_node_tls(const std::string& cert, const std::string& key,
                           const std::string& ca, const std::string& passphrase) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return "cannot create an OpenSSL context: " + openssl_error();
  if (!passphrase.empty()) {
    SSL_CTX_set_default_passwd_cb(ctx.get(), passphrase_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), const_cast<std::string*>(&passphrase));
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1)
    return "NODE_TLS_CERT=" + cert + " is not a PEM certificate (chain): " + openssl_error();
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
    return "NODE_TLS_KEY=" + key + " cannot be loaded (a PEM private key; "
           "NODE_TLS_KEY_PASSPHRASE if it is encrypted): " + openssl_error();
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return "NODE_TLS_KEY does not belong to NODE_TLS_CERT: " + openssl_error();
  if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1)
    return "NODE_TLS_CA=" + ca + " is not a PEM CA certificate: " + openssl_error();
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> verify{X509_STORE_CTX_new(),
                                                                         X509_STORE_CTX_free};
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx.get(), &chain);
  if (!verify
      || X509_STORE_CTX_init(verify.get(), SSL_CTX_get_cert_store(ctx.get()),
                             SSL_CTX_get0_certificate(ctx.get()), chain)
           != 1)
    return "cannot set up certificate verification: " + openssl_error();
  if (X509_verify_cert(verify.get()) != 1)
    return "NODE_TLS_CERT is not signed by NODE_TLS_CA ("
           + std::string{X509_verify_cert_error_string(X509_STORE_CTX_get_error(verify.get()))}
           + "): peers would refuse this node";
  return "";
}

} // namespace vw
