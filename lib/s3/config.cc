#include "s3/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include <fmt/core.h>

#include "base/file_util.h"
#include "base/strings.h"

namespace mflow::s3 {
namespace {

using base::Result;
using base::Status;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool is_true(const std::optional<std::string>& value) {
  return value && lower(base::trim(*value)) == "true";
}

// A missing file is an empty one: most machines have only one of the two files, or none.
Result<std::vector<IniSection>> load_ini(const std::string& path) {
  if (path.empty()) return std::vector<IniSection>{};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return std::vector<IniSection>{};
  auto text = base::read_regular_file(path);
  if (!text.ok()) return text.status();
  return parse_ini(*text, path);
}

// The profile a config-file section header names: "default" and "profile NAME" (and
// "profile default"); other sections ("services x", "sso-session x") are not profiles.
std::optional<std::string> config_profile_name(const std::string& section) {
  if (section == "default") return section;
  if (base::starts_with(section, "profile ")) {
    return std::string(base::trim(std::string_view(section).substr(8)));
  }
  return std::nullopt;
}

void merge_into(Profile& profile, const IniSection& section) {
  for (const auto& [k, v] : section.values) profile.values[k] = v;
  for (const auto& [k, sub] : section.nested) {
    for (const auto& [sk, sv] : sub) profile.nested[k][sk] = sv;
  }
}

bool valid_region(std::string_view region) {
  return !region.empty() && region.size() <= 64 &&
         std::all_of(region.begin(), region.end(), [](unsigned char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

}  // namespace

Env process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  };
}

Env map_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

Result<std::vector<IniSection>> parse_ini(std::string_view text, const std::string& path) {
  std::vector<IniSection> sections;
  std::map<std::string, size_t> index;  // section name -> position in `sections`
  IniSection* current = nullptr;
  // The key whose value is empty, so indented lines below it are its nested settings.
  std::string open_key;
  std::string last_key;
  int line_no = 0;
  auto error = [&](const std::string& what) {
    return Status::invalid(fmt::format("{}:{}: {}", path, line_no, what));
  };
  for (std::string_view rest = text; !rest.empty();) {
    size_t nl = rest.find('\n');
    std::string_view raw = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = base::trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    bool indented = raw[0] == ' ' || raw[0] == '\t';
    if (line[0] == '[') {
      if (line.back() != ']') {
        return error("a section header must end with ']' (write [profile NAME] or [NAME])");
      }
      std::string name(base::trim(line.substr(1, line.size() - 2)));
      // "[profile   x]" means the same as "[profile x]".
      if (base::starts_with(name, "profile ")) {
        name = "profile " + std::string(base::trim(std::string_view(name).substr(8)));
      }
      if (name.empty() || name == "profile") return error("empty section name");
      auto [it, inserted] = index.emplace(name, sections.size());
      if (inserted) {
        sections.push_back(IniSection{name, fmt::format("{}:{}", path, line_no), {}, {}});
      }
      current = &sections[it->second];
      open_key.clear();
      last_key.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (indented && current != nullptr && !open_key.empty()) {
      if (eq == std::string_view::npos) {
        return error(fmt::format("expected 'key = value' nested under '{} ='", open_key));
      }
      std::string key = lower(base::trim(line.substr(0, eq)));
      if (key.empty()) return error("a nested setting has no name before '='");
      current->nested[open_key][key] =
          Setting{std::string(base::trim(line.substr(eq + 1))), fmt::format("{}:{}", path, line_no)};
      continue;
    }
    if (indented && current != nullptr && !last_key.empty()) {
      return error(fmt::format(
          "an indented line continues '{}', which already has a value; nested settings go under a "
          "key with no value (e.g. 's3 =' followed by indented 'addressing_style = path')",
          last_key));
    }
    if (eq == std::string_view::npos) {
      return error(fmt::format("expected '[section]', 'key = value' or a comment, found '{}'",
                               base::printable(line.substr(0, 60))));
    }
    if (current == nullptr) {
      return error("a setting before any [section]; put it under [default] or [profile NAME]");
    }
    std::string key = lower(base::trim(line.substr(0, eq)));
    if (key.empty()) return error("a setting has no name before '='");
    std::string value(base::trim(line.substr(eq + 1)));
    current->values[key] = Setting{value, fmt::format("{}:{}", path, line_no)};
    last_key = key;
    open_key = value.empty() ? key : std::string();
  }
  return sections;
}

const Setting* Profile::get(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() || it->second.value.empty() ? nullptr : &it->second;
}

const Setting* Profile::get_nested(const std::string& section, const std::string& key) const {
  auto it = nested.find(section);
  if (it == nested.end()) return nullptr;
  auto kt = it->second.find(key);
  return kt == it->second.end() || kt->second.value.empty() ? nullptr : &kt->second;
}

std::string expand_home(const std::string& path, const Env& env) {
  if (path == "~" || base::starts_with(path, "~/")) {
    if (auto home = env("HOME")) return *home + path.substr(1);
  }
  return path;
}

Result<SharedConfig> SharedConfig::load(const Env& env) {
  SharedConfig config;
  auto home = env("HOME");
  auto path_of = [&](const char* var, const char* file) -> std::string {
    if (auto set = env(var)) return expand_home(*set, env);
    return home ? *home + "/.aws/" + file : std::string();
  };
  config.config_path_ = path_of("AWS_CONFIG_FILE", "config");
  config.credentials_path_ = path_of("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  auto cfg = load_ini(config.config_path_);
  if (!cfg.ok()) return cfg.status();
  config.config_ = std::move(cfg).value();
  auto creds = load_ini(config.credentials_path_);
  if (!creds.ok()) return creds.status();
  config.credentials_ = std::move(creds).value();
  return config;
}

std::optional<Profile> SharedConfig::profile(const std::string& name) const {
  Profile profile;
  profile.name = name;
  std::vector<std::string> where;
  // "[default]" and "[profile default]" are both the default profile; the latter wins.
  for (const auto& section : config_) {
    auto pname = config_profile_name(section.name);
    if (pname && *pname == name) {
      merge_into(profile, section);
      where.push_back(fmt::format("[{}] in {}", section.name, section.where));
    }
  }
  for (const auto& section : credentials_) {
    if (section.name == name) {
      merge_into(profile, section);
      where.push_back(fmt::format("[{}] in {}", section.name, section.where));
    }
  }
  if (where.empty()) return std::nullopt;
  profile.where = base::join(where, " and ");
  return profile;
}

const IniSection* SharedConfig::services(const std::string& name) const {
  for (const auto& section : config_) {
    if (section.name == "services " + name) return &section;
  }
  return nullptr;
}

std::string SharedConfig::profile_name(const Env& env, const std::string& explicit_name) {
  if (!explicit_name.empty()) return explicit_name;
  if (auto from_env = env("AWS_PROFILE")) return *from_env;
  return "default";
}

Status SharedConfig::missing_profile_error(const std::string& name, const std::string& asked_by) const {
  std::set<std::string> known;
  std::string hint;
  for (const auto& section : config_) {
    if (auto pname = config_profile_name(section.name)) {
      known.insert(*pname);
    } else if (section.name == name) {
      hint = fmt::format("; {} has a section [{}]: in the config file a profile is written [profile {}]",
                         section.where, name, name);
    }
  }
  for (const auto& section : credentials_) known.insert(section.name);
  std::string files = fmt::format("{} or {}", config_path_.empty() ? "(no config file)" : config_path_,
                                  credentials_path_.empty() ? "(no credentials file)" : credentials_path_);
  return Status::invalid(fmt::format(
      "AWS profile '{}' ({}) is not in {}{}{}", name, asked_by, files,
      known.empty() ? std::string()
                    : "; profiles there: " + base::join({known.begin(), known.end()}, ", "),
      hint));
}

Result<UrlParts> parse_url(const std::string& url, const std::string& what) {
  auto bad = [&](const std::string& why) {
    return Status::invalid(fmt::format("{}: '{}' is not a usable URL ({}); write e.g. "
                                       "https://host:9000",
                                       what, base::printable(url), why));
  };
  UrlParts parts;
  size_t sep = url.find("://");
  if (sep == std::string::npos) return bad("no scheme");
  parts.scheme = lower(url.substr(0, sep));
  if (parts.scheme != "http" && parts.scheme != "https") return bad("the scheme must be http or https");
  std::string rest = url.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  parts.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (parts.path[0] != '/') parts.path = "/" + parts.path;
  if (authority.find('@') != std::string::npos) return bad("user information is not allowed");
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return bad("unclosed '[' in the host");
    parts.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("junk after the IPv6 address");
      port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    parts.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (parts.host.empty()) return bad("no host");
  if (!port.empty() || authority.back() == ':') {
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(port) == 0 || std::stoi(port) > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    parts.port = std::stoi(port);
  }
  return parts;
}

Result<std::optional<std::string>> configured_endpoint(const SharedConfig& config,
                                                       const std::optional<Profile>& profile,
                                                       const Env& env, const std::string& service) {
  if (is_true(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))) return std::optional<std::string>();
  std::string upper = service;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  std::optional<std::string> url;
  std::string what;
  for (std::string var : {"AWS_ENDPOINT_URL_" + upper, std::string("AWS_ENDPOINT_URL")}) {
    if (!url && (url = env(var))) what = var;
  }
  if (!url && profile) {
    if (const Setting* s = profile->get("ignore_configured_endpoint_urls"); s && is_true(s->value)) {
      return std::optional<std::string>();
    }
    if (const Setting* services = profile->get("services")) {
      const IniSection* section = config.services(services->value);
      if (section == nullptr) {
        return Status::invalid(fmt::format(
            "{}: services = {} names a [services {}] section that the config file {} does not have",
            services->where, services->value, services->value, config.config_path()));
      }
      auto sub = section->nested.find(service);
      if (sub != section->nested.end()) {
        auto it = sub->second.find("endpoint_url");
        if (it != sub->second.end() && !it->second.value.empty()) {
          url = it->second.value;
          what = it->second.where + " (" + service + " endpoint_url)";
        }
      }
    }
    if (!url) {
      if (const Setting* s = profile->get("endpoint_url")) {
        url = s->value;
        what = s->where + " (endpoint_url)";
      }
    }
  }
  if (!url) return std::optional<std::string>();
  auto parts = parse_url(*url, what);
  if (!parts.ok()) return parts.status();
  while (url->size() > 1 && url->back() == '/') url->pop_back();
  return url;
}

Result<std::string> resolve_region(const std::optional<Profile>& profile, const Env& env) {
  std::optional<std::string> region;
  std::string what;
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (!region && (region = env(var))) what = var;
  }
  if (!region && profile) {
    if (const Setting* s = profile->get("region")) {
      region = s->value;
      what = s->where + " (region)";
    }
  }
  if (!region) return std::string("us-east-1");
  std::string value(base::trim(*region));
  if (!valid_region(value)) {
    return Status::invalid(fmt::format("{}: '{}' is not a region name (lower-case letters, digits and "
                                       "'-', e.g. eu-west-1)",
                                       what, base::printable(value.substr(0, 64))));
  }
  return value;
}

std::string default_endpoint(const std::string& service, const std::string& region) {
  std::string domain = base::starts_with(region, "cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return fmt::format("https://{}.{}.{}", service, region, domain);
}

Result<ConnectionSettings> resolve_connection_settings(const SharedConfig& config, const Env& env,
                                                       const std::string& explicit_profile) {
  ConnectionSettings settings;
  settings.profile = SharedConfig::profile_name(env, explicit_profile);
  std::optional<Profile> profile = config.profile(settings.profile);
  if (!profile && settings.profile != "default") {
    return config.missing_profile_error(settings.profile,
                                        explicit_profile.empty() ? "AWS_PROFILE" : "--profile");
  }
  auto region = resolve_region(profile, env);
  if (!region.ok()) return region.status();
  settings.region = *region;
  auto endpoint = configured_endpoint(config, profile, env, "s3");
  if (!endpoint.ok()) return endpoint.status();
  settings.custom_endpoint = endpoint->has_value();
  settings.endpoint = endpoint->value_or(default_endpoint("s3", settings.region));

  std::optional<Setting> addressing;
  if (auto from_env = env("MFLOW_S3_ADDRESSING")) {
    addressing = Setting{*from_env, "MFLOW_S3_ADDRESSING"};
  } else if (profile) {
    if (const Setting* s = profile->get_nested("s3", "addressing_style")) {
      addressing = Setting{s->value, s->where + " (s3 addressing_style)"};
    }
  }
  if (addressing) {
    std::string style = lower(base::trim(addressing->value));
    if (style == "auto") {
      settings.addressing = Addressing::kAuto;
    } else if (style == "path") {
      settings.addressing = Addressing::kPath;
    } else if (style == "virtual") {
      settings.addressing = Addressing::kVirtual;
    } else {
      return Status::invalid(fmt::format("{}: addressing style '{}' is not one of auto, path, virtual",
                                         addressing->where, base::printable(addressing->value)));
    }
  }

  std::optional<Setting> ca;
  if (auto from_env = env("AWS_CA_BUNDLE")) {
    ca = Setting{*from_env, "AWS_CA_BUNDLE"};
  } else if (profile) {
    if (const Setting* s = profile->get("ca_bundle")) ca = Setting{s->value, s->where + " (ca_bundle)"};
  }
  if (ca) {
    settings.ca_bundle = expand_home(ca->value, env);
    if (::access(settings.ca_bundle.c_str(), R_OK) != 0) {
      return Status::invalid(fmt::format("{}: cannot read the CA bundle {}: {}; it must be a PEM file "
                                         "of the certificates to trust",
                                         ca->where, settings.ca_bundle, std::strerror(errno)));
    }
  }
  return settings;
}

}  // namespace mflow::s3
