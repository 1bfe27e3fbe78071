// MemoryObjectStore: an in-memory ObjectStore with S3's semantics, for tests: whole-object
// puts only (no rename, no append, no hard links, no flock), a conditional create, listings
// by prefix and delimiter, and heartbeat leases that go stale on the store's own clock. The
// datastore unit tests run against it and against LocalObjectStore, which proves that the
// datastore logic has no hidden dependence on POSIX file semantics. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "store/object_store.h"

namespace mflow::test {

class MemoryObjectStore : public store::ObjectStore {
 public:
  /// A lease object not rewritten for this long reads as not held.
  static constexpr std::chrono::seconds kStaleAfter{30};

  std::string url() const override { return "mem://test"; }
  std::string describe(const std::string& key) const override { return "mem://test/" + key; }

  base::Result<std::string> get(const std::string& key) const override;
  base::Status put(const std::string& key, std::string_view bytes, store::PutMode mode,
                   bool durable = false) override;
  base::Status put_file(const std::string& key, const std::string& path, store::PutMode mode,
                        bool consume) override;
  base::Status get_file(const std::string& key, const std::string& dest,
                        const std::optional<std::string>& expect_sha256) const override;
  base::Result<std::string> get_range(const std::string& key, int64_t offset,
                                      int64_t max_bytes) const override;
  base::Result<std::optional<store::ObjectInfo>> head(const std::string& key) const override;
  base::Result<store::Listing> list(const std::string& prefix) const override;
  base::Status remove(const std::string& key) override;
  base::Result<std::unique_ptr<store::Lease>> hold(const std::string& key) override;
  base::Result<bool> held(const std::string& key) const override;

  /// Moves the store's clock on; live leases heartbeat (rewrite their object) as they would
  /// from their background thread.
  void advance(std::chrono::seconds by);
  /// Every current holder dies at once: their heartbeats stop, their lease objects stay.
  void kill_holders();
  /// Number of requests served, by operation name ("get", "put", "list", ...).
  std::map<std::string, int> requests() const;

 private:
  class HeartbeatLease;
  struct Object {
    std::string bytes;
    std::chrono::system_clock::time_point modified;
  };
  void count(const char* op) const { ++requests_[op]; }

  mutable std::mutex mu_;
  std::map<std::string, Object> objects_;             // guarded by mu_
  std::set<std::string> live_leases_;                 // guarded by mu_
  std::chrono::system_clock::time_point now_ =        // guarded by mu_
      std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56));
  mutable std::map<std::string, int> requests_;       // guarded by mu_
};

}  // namespace mflow::test
