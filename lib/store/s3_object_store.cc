#include "store/s3_object_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/core.h>

namespace mflow::store {
namespace {

using base::Result;
using base::Status;

// The heartbeat of a held key: rewrites the object every interval until destroyed, then
// deletes it (an orderly release; a crashed holder's object just goes stale).
class HeartbeatLease : public Lease {
 public:
  HeartbeatLease(std::shared_ptr<s3::Client> client, std::string bucket, std::string key, std::string body,
                 std::chrono::milliseconds interval)
      : client_(std::move(client)), bucket_(std::move(bucket)), key_(std::move(key)), body_(std::move(body)),
        interval_(interval), thread_([this] { beat(); }) {}

  ~HeartbeatLease() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    (void)client_->delete_object(bucket_, key_);
  }

 private:
  void beat() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      lock.unlock();
      // A failed rewrite is tried again at the next beat; the staleness limit allows for
      // a few (the client already retried transient failures).
      (void)client_->put_object(bucket_, key_, body_);
      lock.lock();
    }
  }

  std::shared_ptr<s3::Client> client_;
  std::string bucket_, key_, body_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;  // last: starts after every member it reads is set
};

std::string holder_id() {
  char host[256] = "unknown-host";
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return fmt::format("{} pid {} token {:08x}{:08x}", host, ::getpid(), rd(), rd());
}

}  // namespace

Result<std::unique_ptr<S3ObjectStore>> S3ObjectStore::open(const std::string& url,
                                                           std::shared_ptr<s3::Client> client,
                                                           S3StoreOptions options) {
  constexpr std::string_view kScheme = "s3://";
  if (url.rfind(kScheme, 0) != 0) {
    return Status::invalid(fmt::format("\"{}\" is not an S3 URL (expected s3://bucket/prefix)", url));
  }
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (bucket.empty()) return Status::invalid(fmt::format("\"{}\": the S3 URL names no bucket", url));
  if (prefix.find("//") != std::string::npos || (!prefix.empty() && prefix.front() == '/')) {
    return Status::invalid(fmt::format("\"{}\": the prefix has an empty path component", url));
  }
  return std::unique_ptr<S3ObjectStore>(
      new S3ObjectStore(std::move(bucket), std::move(prefix), std::move(client), options));
}

S3ObjectStore::S3ObjectStore(std::string bucket, std::string prefix, std::shared_ptr<s3::Client> client,
                             S3StoreOptions options)
    : bucket_(std::move(bucket)), prefix_(std::move(prefix)), client_(std::move(client)), options_(options) {}

std::string S3ObjectStore::object_key(const std::string& key) const {
  return prefix_.empty() ? key : prefix_ + "/" + key;
}

std::string S3ObjectStore::url() const {
  return prefix_.empty() ? "s3://" + bucket_ : fmt::format("s3://{}/{}", bucket_, prefix_);
}

std::string S3ObjectStore::describe(const std::string& key) const { return s3::Client::url(bucket_, object_key(key)); }

Result<std::string> S3ObjectStore::get(const std::string& key) const {
  return client_->get_object(bucket_, object_key(key));
}

Status S3ObjectStore::put(const std::string& key, std::string_view bytes, PutMode mode, bool /*durable*/) {
  // An acknowledged S3 write is durable; a PutObject replaces the object atomically.
  return client_->put_object(bucket_, object_key(key), bytes, mode == PutMode::kIfAbsent);
}

Status S3ObjectStore::put_file(const std::string& key, const std::string& path, PutMode mode, bool consume) {
  Status st = client_->put_file(bucket_, object_key(key), path, mode == PutMode::kIfAbsent);
  // The caller gave the file up: like the local store's rename, it is gone once stored.
  if (st.ok() && consume) ::unlink(path.c_str());
  return st;
}

Status S3ObjectStore::get_file(const std::string& key, const std::string& dest,
                               const std::optional<std::string>& expect_sha256) const {
  MFLOW_RETURN_IF_ERROR(client_->get_file(bucket_, object_key(key), dest, expect_sha256));
  // Stored objects are read-only, as in the local store (a task must not edit its input).
  if (::chmod(dest.c_str(), 0444) != 0) return Status::from_errno(dest, errno);
  return Status::ok_status();
}

Result<std::string> S3ObjectStore::get_range(const std::string& key, int64_t offset, int64_t max_bytes) const {
  return client_->get_range(bucket_, object_key(key), offset, max_bytes);
}

Result<std::optional<ObjectInfo>> S3ObjectStore::head(const std::string& key) const {
  auto meta = client_->head_object(bucket_, object_key(key));
  if (!meta.ok()) return meta.status();
  if (!*meta) return std::optional<ObjectInfo>();
  ObjectInfo info;
  info.key = key;
  info.size = (*meta)->size;
  info.modified = (*meta)->last_modified;
  return std::optional<ObjectInfo>(std::move(info));
}

Result<Listing> S3ObjectStore::list(const std::string& prefix) const {
  const std::string base = prefix_.empty() ? "" : prefix_ + "/";
  auto listed = client_->list_objects(bucket_, base + prefix, "/");
  if (!listed.ok()) return listed.status();
  Listing out;
  for (auto& o : listed->objects) {
    ObjectInfo info;
    info.key = o.key.substr(base.size());
    info.size = o.size;
    info.modified = o.last_modified;
    out.objects.push_back(std::move(info));
  }
  const size_t skip = base.size() + prefix.size();
  for (auto& p : listed->prefixes) {
    std::string name = p.substr(skip);
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (!name.empty()) out.subdirs.push_back(std::move(name));
  }
  return out;
}

Status S3ObjectStore::remove(const std::string& key) { return client_->delete_object(bucket_, object_key(key)); }

Result<std::unique_ptr<Lease>> S3ObjectStore::hold(const std::string& key) {
  auto live = held(key);
  if (!live.ok()) return live.status();
  if (*live) {
    return Status::conflict(fmt::format("{} is held by a running mflow (its heartbeat is fresh)", describe(key)));
  }
  const std::string body = fmt::format("mflow heartbeat\nholder: {}\n", holder_id());
  // A stale heartbeat of a crashed holder is taken over by overwriting it; an absent one is
  // created conditionally, so of two processes starting at once only one gets it.
  auto info = head(key);
  if (!info.ok()) return info.status();
  MFLOW_RETURN_IF_ERROR(client_->put_object(bucket_, object_key(key), body, !info->has_value()));
  return std::unique_ptr<Lease>(
      new HeartbeatLease(client_, bucket_, object_key(key), body, options_.heartbeat_interval));
}

Result<bool> S3ObjectStore::held(const std::string& key) const {
  auto meta = client_->head_object(bucket_, object_key(key));
  if (!meta.ok()) return meta.status();
  if (!*meta) return false;
  // Both times come from the service: its Date now, and when it stored the last beat.
  auto age = (*meta)->server_date - (*meta)->last_modified;
  return age < options_.stale_after;
}

}  // namespace mflow::store
