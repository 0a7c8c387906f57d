#pragma once
// The public listener's TLS context: TLS 1.2+ only, forward-secret AEAD suites for 1.2 (every
// TLS 1.3 suite), no compression or renegotiation, the server's suite preference. Internal to the
// server.

#include "dsr/common/error.hpp"
#include "dsr/http/server.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>

namespace dsr::http::detail {

// Loads the certificate chain and key named in `files`. Errors: invalid_input naming the
// [server] key, the file and OpenSSL's reason (a missing file, a key that does not belong to the
// certificate); io_error when OpenSSL refuses the suite list.
result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const tls_files& files);

}  // namespace dsr::http::detail
