#include "support/test_pki.hpp"

#include <cstdlib>
#include <string>

namespace dsr::test {

bool make_test_pki(const std::filesystem::path& dir) {
  const std::string cmd =
      "cd '" + dir.string() +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.pem -days 2 -subj /CN=dsr-test-ca 2>/dev/null"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key "
      "-out srv.csr -subj /CN=localhost 2>/dev/null"
      " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > ext.cnf"
      " && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem "
      "-days 2 -extfile ext.cnf 2>/dev/null"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
      "other.key -out other.csr -subj /CN=other.example 2>/dev/null"
      " && printf 'subjectAltName=DNS:other.example' > other.cnf"
      " && openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
      "other.pem -days 2 -extfile other.cnf 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace dsr::test
