#include "support/memory_object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/hash.h"

namespace mflow::test {

using base::Result;
using base::Status;
using store::PutMode;

class MemoryObjectStore::HeartbeatLease : public store::Lease {
 public:
  HeartbeatLease(MemoryObjectStore* store, std::string key)
      : store_(store), key_(std::move(key)) {}
  ~HeartbeatLease() override {
    std::lock_guard<std::mutex> lock(store_->mu_);
    // Released in order: the heartbeat stops and its object goes. A holder that was killed
    // (kill_holders) no longer owns it.
    if (store_->live_leases_.erase(key_) > 0) store_->objects_.erase(key_);
  }

 private:
  MemoryObjectStore* store_;
  std::string key_;
};

Result<std::string> MemoryObjectStore::get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  count("get");
  auto it = objects_.find(key);
  if (it == objects_.end()) return Status::not_found(describe(key) + ": no such object");
  return it->second.bytes;
}

Status MemoryObjectStore::put(const std::string& key, std::string_view bytes, PutMode mode,
                              bool /*durable*/) {
  std::lock_guard<std::mutex> lock(mu_);
  count("put");
  if (mode == PutMode::kIfAbsent && objects_.count(key)) {
    return Status::conflict(describe(key) + " exists");
  }
  objects_[key] = Object{std::string(bytes), now_};
  return Status();
}

Status MemoryObjectStore::put_file(const std::string& key, const std::string& path, PutMode mode,
                                   bool consume) {
  auto bytes = base::read_regular_file(path);
  if (!bytes.ok()) return bytes.status();
  Status s = put(key, bytes.value(), mode);
  if (consume && (s.ok() || s.code() == base::StatusCode::kConflict)) ::unlink(path.c_str());
  return s;
}

Status MemoryObjectStore::get_file(const std::string& key, const std::string& dest,
                                   const std::optional<std::string>& expect_sha256) const {
  auto bytes = get(key);
  if (!bytes.ok()) return bytes.status();
  if (expect_sha256 && base::sha256_hex(bytes.value()) != *expect_sha256) {
    return Status::io_error(describe(key) + ": content does not match its SHA-256");
  }
  // A download: a temp file beside dest, renamed into place read-only.
  std::string tmp = dest + ".download";
  MFLOW_RETURN_IF_ERROR(base::write_file_atomic(tmp, bytes.value()));
  if (::chmod(tmp.c_str(), 0444) != 0 || ::rename(tmp.c_str(), dest.c_str()) != 0) {
    Status s = Status::from_errno(dest, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  return Status();
}

Result<std::string> MemoryObjectStore::get_range(const std::string& key, int64_t offset,
                                                 int64_t max_bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  count("get");
  auto it = objects_.find(key);
  if (it == objects_.end()) return Status::not_found(describe(key) + ": no such object");
  const std::string& b = it->second.bytes;
  if (offset >= static_cast<int64_t>(b.size())) return std::string();
  return b.substr(static_cast<size_t>(offset), static_cast<size_t>(max_bytes));
}

Result<std::optional<store::ObjectInfo>> MemoryObjectStore::head(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  count("head");
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::optional<store::ObjectInfo>();
  return std::optional<store::ObjectInfo>(store::ObjectInfo{
      key, static_cast<int64_t>(it->second.bytes.size()), it->second.modified});
}

Result<store::Listing> MemoryObjectStore::list(const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  count("list");
  store::Listing out;
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    std::string rest = it->first.substr(prefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string::npos) {
      out.objects.push_back(store::ObjectInfo{
          it->first, static_cast<int64_t>(it->second.bytes.size()), it->second.modified});
    } else if (out.subdirs.empty() || out.subdirs.back() != rest.substr(0, slash)) {
      out.subdirs.push_back(rest.substr(0, slash));
    }
  }
  return out;
}

Status MemoryObjectStore::remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  count("delete");
  objects_.erase(key);
  return Status();
}

Result<std::unique_ptr<store::Lease>> MemoryObjectStore::hold(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  count("put");
  auto it = objects_.find(key);
  if (it != objects_.end() && now_ - it->second.modified < kStaleAfter) {
    return Status::conflict(describe(key) + " is held");
  }
  objects_[key] = Object{"heartbeat", now_};
  live_leases_.insert(key);
  return std::unique_ptr<store::Lease>(new HeartbeatLease(this, key));
}

Result<bool> MemoryObjectStore::held(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  count("head");
  auto it = objects_.find(key);
  return it != objects_.end() && now_ - it->second.modified < kStaleAfter;
}

void MemoryObjectStore::advance(std::chrono::seconds by) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ += by;
  for (const auto& key : live_leases_) objects_[key] = Object{"heartbeat", now_};
}

void MemoryObjectStore::kill_holders() {
  std::lock_guard<std::mutex> lock(mu_);
  live_leases_.clear();
}

std::map<std::string, int> MemoryObjectStore::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

}  // namespace mflow::test
