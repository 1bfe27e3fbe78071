// S3ObjectStore: the ObjectStore (object_store.h) on S3, through s3::Client. Keys live under
// s3://bucket/prefix/, so the object layout is the local one (docs/datastore.md). Liveness
// (hold/held) is a heartbeat object that a background thread of the holder rewrites every
// heartbeat_interval; it counts as held while the service's own clock (the Date of a HEAD
// answer) is less than stale_after past its Last-Modified, so no local clock is trusted.
// Thread-safe, like the client under it.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "s3/client.h"
#include "store/object_store.h"

namespace mflow::store {

struct S3StoreOptions {
  std::chrono::milliseconds heartbeat_interval{10000};
  /// A heartbeat older than this (by the service's clock) is a holder that is gone: three
  /// missed beats, so a slow request or two does not make a live run look crashed.
  std::chrono::milliseconds stale_after{30000};
};

class S3ObjectStore : public ObjectStore {
 public:
  /// `url` is "s3://bucket" or "s3://bucket/prefix" (a trailing '/' is ignored). kInvalid
  /// for anything else, naming the URL.
  static base::Result<std::unique_ptr<S3ObjectStore>> open(const std::string& url,
                                                           std::shared_ptr<s3::Client> client,
                                                           S3StoreOptions options = {});

  std::string url() const override;
  std::string describe(const std::string& key) const override;
  base::Result<std::string> get(const std::string& key) const override;
  base::Status put(const std::string& key, std::string_view bytes, PutMode mode, bool durable = false) override;
  base::Status put_file(const std::string& key, const std::string& path, PutMode mode, bool consume) override;
  base::Status get_file(const std::string& key, const std::string& dest,
                        const std::optional<std::string>& expect_sha256) const override;
  base::Result<std::string> get_range(const std::string& key, int64_t offset, int64_t max_bytes) const override;
  base::Result<std::optional<ObjectInfo>> head(const std::string& key) const override;
  base::Result<Listing> list(const std::string& prefix) const override;
  base::Status remove(const std::string& key) override;
  base::Result<std::unique_ptr<Lease>> hold(const std::string& key) override;
  base::Result<bool> held(const std::string& key) const override;

 private:
  S3ObjectStore(std::string bucket, std::string prefix, std::shared_ptr<s3::Client> client, S3StoreOptions options);
  /// The object key of a store key: "prefix/key" (or "key" without a prefix).
  std::string object_key(const std::string& key) const;

  std::string bucket_;
  std::string prefix_;  // without leading or trailing '/'; may be empty
  std::shared_ptr<s3::Client> client_;
  S3StoreOptions options_;
};

}  // namespace mflow::store
