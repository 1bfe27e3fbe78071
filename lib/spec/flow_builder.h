// The model builder: a parsed (and schema-checked) Document -> spec::Flow. Applies `defaults`
// to every step (step values win; maps such as env, resources and kubernetes merge key by key),
// parses durations, and makes the checks the schema cannot express, each with a position:
// parameter defaults match their type, durations are well-formed and positive, a foreach has
// exactly one `next`, MFLOW_* environment names are reserved. Tolerant of values the schema
// already rejected (they are skipped, not reported twice). Thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>

#include "spec/diagnostic.h"
#include "spec/document.h"
#include "spec/flow.h"

namespace mflow::spec {

/// Builds the flow; returns nullopt when this call pushed any error to `diags`.
std::optional<Flow> build_flow(const Document& doc, const std::string& file, Diagnostics* diags);

}  // namespace mflow::spec
