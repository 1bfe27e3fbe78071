#include "base/hash.h"

#include <openssl/evp.h>


#include "base/file_util.h"

namespace mflow::base {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  MFLOW_CHECK(ctx_ != nullptr, "EVP_MD_CTX_new failed");
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(const void* data, size_t size) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex_digest();
}

Result<std::string> sha256_file(const std::string& path) {
  Sha256 h;
  MFLOW_RETURN_IF_ERROR(
      read_file_chunks(path, [&](const char* data, size_t size) { h.update(data, size); }));
  return h.hex_digest();
}

}  // namespace mflow::base
