#pragma once

#include <string>

namespace vw {

// Checks the node's TLS material before CAF uses it (CAF's OpenSSL module
// would throw from its network thread): the certificate chain and key load
// and match, the CA loads, and the node's own certificate verifies against
// that CA (peers check it the same way). "" if usable, else one line saying
// what is wrong.
std::string check_node_tls(const std::string& cert, const std::string& key,
                           const std::string& ca, const std::string& passphrase);

} // namespace vw
