#include "dsr/common/error.hpp"

#include <boost/throw_exception.hpp>

namespace dsr {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dsr"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::invalid_input:
        return "invalid input";
      case errc::not_found:
        return "not found";
      case errc::conflict:
        return "conflict";
      case errc::queue_full:
        return "queue full";
      case errc::store_unavailable:
        return "store unavailable";
      case errc::store_corrupt:
        return "store corrupt";
      case errc::lease_lost:
        return "lease lost";
      case errc::io_error:
        return "I/O error";
      case errc::upstream_timeout:
        return "upstream timeout";
      case errc::upstream_unreachable:
        return "upstream unreachable";
      case errc::upstream_tls:
        return "upstream TLS failure";
      case errc::upstream_protocol:
        return "upstream protocol error";
      case errc::upstream_too_large:
        return "upstream answer too large";
      case errc::store_schema_newer:
        return "store schema newer than this build";
      case errc::unsupported:
        return "not supported here";
    }
    return "unknown dsr error";
  }
};

}  // namespace

const boost::system::error_category& dsr_category() noexcept {
  static const category instance;
  return instance;
}

void throw_exception_from_error(const failure& f, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(f.code, f.detail), loc);
}

}  // namespace dsr
