#pragma once
// A throw-away PKI made with the openssl command line: a test CA (ca.pem), a server certificate
// for localhost and 127.0.0.1 (srv.pem, srv.key), and one for other.example (other.pem,
// other.key), all in `dir`.

#include <filesystem>

namespace dsr::test {

// False when the openssl command failed.
bool make_test_pki(const std::filesystem::path& dir);

}  // namespace dsr::test
