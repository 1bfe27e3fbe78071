// The AWS shared configuration: the environment and the INI files ~/.aws/config and
// ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), read the way the AWS
// SDKs and CLI read them, and the ConnectionSettings resolved from them (docs/s3.md,
// "Credentials and settings"). Used by the credential chain (credentials.cc) and by whoever
// opens an S3 datastore. Values are immutable once loaded; safe to share between threads.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "s3/credentials.h"

namespace mflow::s3 {

/// Reads an environment variable; empty values count as unset (as in the AWS SDKs). Tests
/// pass a map instead of the process environment.
using Env = std::function<std::optional<std::string>(const std::string& name)>;
/// The process environment (getenv).
Env process_env();
/// A fixed environment (tests).
Env map_env(std::map<std::string, std::string> vars);

/// One `key = value` and where it was written ("/home/me/.aws/config:7") for messages.
struct Setting {
  std::string value;
  std::string where;
};

/// One [section] of an INI file: its settings (keys lower-cased) and nested sub-sections
/// (`s3 =` followed by indented `addressing_style = path` lines).
struct IniSection {
  std::string name;   // as written between the brackets, trimmed
  std::string where;  // file:line of the [section] header
  std::map<std::string, Setting> values;
  std::map<std::string, std::map<std::string, Setting>> nested;
};

/// Parses the AWS INI dialect: `[section]`, `key = value`, full-line comments starting with
/// '#' or ';', blank lines, and nested settings under a key with an empty value. A section
/// that appears twice is merged (later keys win). Errors are kInvalid "PATH:LINE: ..." and
/// say what to write instead. `path` is used only for messages.
base::Result<std::vector<IniSection>> parse_ini(std::string_view text, const std::string& path);

/// One profile: the config file's [profile NAME] (or [default]) merged with the credentials
/// file's [NAME]; the credentials file wins for a key in both (as in the SDKs).
struct Profile {
  std::string name;
  std::string where;  // "[profile ci] in /home/me/.aws/config:3" (+ the credentials file's)
  std::map<std::string, Setting> values;
  std::map<std::string, std::map<std::string, Setting>> nested;

  const Setting* get(const std::string& key) const;
  const Setting* get_nested(const std::string& section, const std::string& key) const;
};

/// Both shared files, parsed. Missing files are empty (not an error); unreadable or
/// malformed ones are.
class SharedConfig {
 public:
  /// Reads AWS_CONFIG_FILE (default ~/.aws/config) and AWS_SHARED_CREDENTIALS_FILE (default
  /// ~/.aws/credentials); "~/" in either is the HOME directory.
  static base::Result<SharedConfig> load(const Env& env);

  /// The profile named `name`, or nullopt when neither file has it.
  std::optional<Profile> profile(const std::string& name) const;
  /// A [services NAME] section of the config file, or nullptr.
  const IniSection* services(const std::string& name) const;

  /// Which profile to use: `explicit_name` if not empty, else AWS_PROFILE, else "default".
  static std::string profile_name(const Env& env, const std::string& explicit_name);

  /// An error for a profile that was asked for by name (AWS_PROFILE or explicitly) but is in
  /// neither file; it lists the profiles there are and hints at a [NAME] section written in
  /// the config file without the "profile " prefix.
  base::Status missing_profile_error(const std::string& name, const std::string& asked_by) const;

  const std::string& config_path() const { return config_path_; }
  const std::string& credentials_path() const { return credentials_path_; }

 private:
  std::string config_path_;
  std::string credentials_path_;
  std::vector<IniSection> config_;
  std::vector<IniSection> credentials_;
};

/// Expands a leading "~/" with HOME.
std::string expand_home(const std::string& path, const Env& env);

/// A parsed http(s) URL: scheme, host (IPv6 without brackets), port (0 = the scheme's
/// default), path (starting with '/', "/" when absent).
struct UrlParts {
  std::string scheme;
  std::string host;
  int port = 0;
  std::string path;
};
/// Parses an http:// or https:// URL; kInvalid naming `what` (the variable or setting it came
/// from) when it is not one.
base::Result<UrlParts> parse_url(const std::string& url, const std::string& what);

/// The endpoint URL of `service` ("s3", "sts"): AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL,
/// the profile's `services` section's `<service> = endpoint_url = ...`, the profile's
/// endpoint_url, in that order (all ignored when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true);
/// nullopt when none is set. The value is checked to be an http(s) URL; its trailing '/'
/// is removed.
base::Result<std::optional<std::string>> configured_endpoint(const SharedConfig& config,
                                                             const std::optional<Profile>& profile,
                                                             const Env& env,
                                                             const std::string& service);

/// The region: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, "us-east-1". kInvalid
/// when the value is not a region name (letters, digits, '-').
base::Result<std::string> resolve_region(const std::optional<Profile>& profile, const Env& env);

/// AWS's own endpoint of `service` in `region` (https://s3.eu-west-1.amazonaws.com;
/// amazonaws.com.cn for the China regions).
std::string default_endpoint(const std::string& service, const std::string& region);

/// Resolves where and how to reach S3 (the precedence is in credentials.h and docs/s3.md):
/// endpoint, region, addressing (MFLOW_S3_ADDRESSING, else the profile's
/// `s3 = addressing_style = auto|path|virtual`), CA bundle (AWS_CA_BUNDLE, else the profile's
/// ca_bundle; the file must exist). `explicit_profile` (a flag) overrides AWS_PROFILE; a
/// profile asked for by name must exist.
base::Result<ConnectionSettings> resolve_connection_settings(const SharedConfig& config,
                                                             const Env& env,
                                                             const std::string& explicit_profile = "");

}  // namespace mflow::s3
