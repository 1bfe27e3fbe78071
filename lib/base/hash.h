// SHA-256 digests as lowercase hex: content addresses of artifacts and hashes of resolved
// step specs. Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace mflow::base {

/// Incremental SHA-256, for hashing files of any size in a streaming fashion.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// The hex digest; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay in hash.cc
};

std::string sha256_hex(std::string_view data);

/// Hashes the file at `path` without loading it into memory.
Result<std::string> sha256_file(const std::string& path);

}  // namespace mflow::base
