#include "playbook/playbook.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace netagent::playbook {
namespace v1 = ::netagent::v1;
namespace {

std::string Sha256(absl::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", md[i]);
  return hex;
}

// Errors that say where: "FILE:LINE: FIELD: what".
class Reader {
 public:
  explicit Reader(const std::string& file) : file_(file) {}

  absl::Status Error(const YAML::Node& node, const std::string& field,
                     const std::string& what) const {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    return absl::InvalidArgumentError(
        line > 0 ? absl::StrCat(file_, ":", line, ": ", field, ": ", what)
                 : absl::StrCat(file_, ": ", field, ": ", what));
  }

  // A mapping whose keys are all in `known`.
  absl::Status Mapping(const YAML::Node& node, const std::string& field,
                       const std::set<std::string>& known) const {
    if (!node.IsMap()) return Error(node, field, "must be a mapping");
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      if (!known.count(key)) {
        return Error(kv.first, Join(field, key),
                     absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) return Error(node, field, "must be a string");
    return node.Scalar();
  }

  absl::StatusOr<double> Number(const YAML::Node& node, const std::string& field, double min,
                                double max) const {
    double v;
    if (!node.IsScalar() || !absl::SimpleAtod(node.Scalar(), &v) || !std::isfinite(v)) {
      return Error(node, field, "must be a number");
    }
    if (v < min || v > max) {
      return Error(node, field, absl::StrCat(node.Scalar(), " is not in ", min, "..", max));
    }
    return v;
  }

  absl::StatusOr<bool> Bool(const YAML::Node& node, const std::string& field) const {
    if (node.IsScalar()) {
      const std::string s = absl::AsciiStrToLower(node.Scalar());
      if (s == "true") return true;
      if (s == "false") return false;
    }
    return Error(node, field, "must be true or false");
  }

  absl::StatusOr<absl::Duration> Duration(const YAML::Node& node, const std::string& field,
                                          absl::Duration min, absl::Duration max) const {
    absl::Duration d;
    if (!node.IsScalar() || !absl::ParseDuration(node.Scalar(), &d)) {
      return Error(node, field, "must be a duration (like 30s, 5m)");
    }
    if (d < min || d > max) {
      return Error(node, field,
                   absl::StrCat(node.Scalar(), " is not in ", absl::FormatDuration(min), "..",
                                absl::FormatDuration(max)));
    }
    return d;
  }

  // 3, or "10%".
  absl::StatusOr<FailureBudget> Budget(const YAML::Node& node, const std::string& field) const {
    FailureBudget b;
    if (node.IsScalar() && absl::EndsWith(node.Scalar(), "%")) {
      double p;
      if (!absl::SimpleAtod(absl::StripSuffix(node.Scalar(), "%"), &p) || p < 0 || p > 100) {
        return Error(node, field, "a percent must be in 0%..100%");
      }
      b.percent = p;
      return b;
    }
    auto n = Number(node, field, 0, 1e6);
    if (!n.ok()) return n.status();
    if (*n != std::floor(*n)) return Error(node, field, "a count must be whole");
    b.count = static_cast<uint32_t>(*n);
    return b;
  }

  static std::string Join(const std::string& a, const std::string& b) {
    return a.empty() ? b : absl::StrCat(a, ".", b);
  }

 private:
  std::string file_;
};

#define PB_ASSIGN(lhs, expr)              \
  do {                                    \
    auto _v = (expr);                     \
    if (!_v.ok()) return _v.status();     \
    lhs = *std::move(_v);                 \
  } while (0)
#define PB_CHECK(expr)                    \
  do {                                    \
    absl::Status _s = (expr);             \
    if (!_s.ok()) return _s;              \
  } while (0)

// Before anything reads the tree: at most kMaxNodes nodes and kMaxDepth
// levels (an alias that refers to itself would otherwise never end), and no
// key twice in one mapping (YAML keeps both; which one counts would be a
// guess).
constexpr int kMaxNodes = 20000;
constexpr int kMaxDepth = 32;

absl::Status CheckTree(const Reader& r, const YAML::Node& node, int depth, int* nodes) {
  if (++*nodes > kMaxNodes) {
    return r.Error(node, "yaml", absl::StrCat("more than ", kMaxNodes,
                                          " nodes (an alias that refers to itself?)"));
  }
  if (depth > kMaxDepth) {
    return r.Error(node, "yaml", absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  }
  if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && !seen.insert(kv.first.Scalar()).second) {
        return r.Error(kv.first, kv.first.Scalar(), "given twice in one mapping");
      }
      PB_CHECK(CheckTree(r, kv.first, depth + 1, nodes));
      PB_CHECK(CheckTree(r, kv.second, depth + 1, nodes));
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) PB_CHECK(CheckTree(r, node[i], depth + 1, nodes));
  }
  return absl::OkStatus();
}

// YAML -> JSON, for the protobuf JSON parser (the intent is the API's own
// TuningIntent, so every intent the tuning API takes can be written).
void ToJson(const YAML::Node& node, std::string* out) {
  if (node.IsMap()) {
    out->push_back('{');
    bool first = true;
    for (const auto& kv : node) {
      if (!first) out->push_back(',');
      first = false;
      out->push_back('"');
      out->append(kv.first.Scalar());
      out->append("\":");
      ToJson(kv.second, out);
    }
    out->push_back('}');
  } else if (node.IsSequence()) {
    out->push_back('[');
    for (size_t i = 0; i < node.size(); ++i) {
      if (i) out->push_back(',');
      ToJson(node[i], out);
    }
    out->push_back(']');
  } else if (node.IsNull()) {
    out->append("null");
  } else {
    const std::string& s = node.Scalar();
    double d;
    const std::string lower = absl::AsciiStrToLower(s);
    if (node.Tag() != "!" && (lower == "true" || lower == "false")) {
      out->append(lower);
    } else if (node.Tag() != "!" && absl::SimpleAtod(s, &d) && std::isfinite(d) &&
               s.find_first_not_of("0123456789.-+eE") == std::string::npos) {
      out->append(s);
    } else {
      out->push_back('"');
      for (char c : s) {
        if (c == '"' || c == '\\') out->push_back('\\');
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
          continue;
        }
        out->push_back(c);
      }
      out->push_back('"');
    }
  }
}

absl::Status ParseIntent(const Reader& r, const YAML::Node& node, const std::string& field,
                         v1::TuningIntent* intent) {
  if (!node.IsMap()) return r.Error(node, field, "must be a mapping (like limits: {settings: ...})");
  std::string json;
  ToJson(node, &json);
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, intent, opts);
  if (!st.ok()) {
    return r.Error(node, field, absl::StrCat("not a tuning intent: ", st.message().as_string()));
  }
  if (intent->intent_case() == v1::TuningIntent::INTENT_NOT_SET) {
    return r.Error(node, field, "names no intent (limits, sysctl, bdp, congestion, rps, ...)");
  }
  // Settings' values: plain values or expressions that parse.
  const google::protobuf::RepeatedPtrField<v1::Setting>* settings = nullptr;
  if (intent->has_limits()) settings = &intent->limits().settings();
  if (intent->has_sysctl()) settings = &intent->sysctl().settings();
  if (settings) {
    for (int i = 0; i < settings->size(); ++i) {
      const auto& s = (*settings)[i];
      if (s.name().empty()) return r.Error(node, field + ".settings.name", "required");
      if (IsExpression(s.value())) {
        if (auto e = CheckExpression(s.value()); !e.ok()) {
          return r.Error(node, absl::StrCat(field, ".settings[", i, "].value"),
                         std::string(e.message()));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CounterCondition> ParseCondition(const Reader& r, const YAML::Node& node,
                                                const std::string& field, bool failure) {
  PB_CHECK(r.Mapping(
      node, field,
      failure ? std::set<std::string>{"counter", "worse_than_baseline", "rate_above", "rate_below"}
              : std::set<std::string>{"counter", "rate_below", "better_than_baseline"}));
  CounterCondition c;
  c.line = node.Mark().line + 1;
  if (!node["counter"]) return r.Error(node, field + ".counter", "required");
  PB_ASSIGN(c.counter, r.String(node["counter"], field + ".counter"));
  if (c.counter.empty() ||
      c.counter.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos) {
    return r.Error(node["counter"], field + ".counter",
                   "a counter name as `netctl counters` shows it (TcpExtListenOverflows)");
  }
  if (node["rate_below"]) {
    PB_ASSIGN(c.rate_below, r.Number(node["rate_below"], field + ".rate_below", 0, 1e15));
  }
  if (node["worse_than_baseline"]) {
    PB_ASSIGN(c.worse_than_baseline,
              r.Number(node["worse_than_baseline"], field + ".worse_than_baseline", 1, 1e6));
  }
  if (node["better_than_baseline"]) {
    PB_ASSIGN(c.better_than_baseline,
              r.Number(node["better_than_baseline"], field + ".better_than_baseline", 1, 1e6));
  }
  if (node["rate_above"]) {
    PB_ASSIGN(c.rate_above, r.Number(node["rate_above"], field + ".rate_above", 0, 1e15));
  }
  if (failure) {
    if (c.rate_below) {
      return r.Error(node["rate_below"], field + ".rate_below",
                     "a failure condition says worse_than_baseline and/or rate_above");
    }
    if (!c.worse_than_baseline && !node["rate_above"]) {
      return r.Error(node, field, "give worse_than_baseline (a factor) and/or rate_above");
    }
  } else if (!c.rate_below && !c.better_than_baseline) {
    return r.Error(node, field, "give rate_below and/or better_than_baseline (a factor)");
  }
  return c;
}

absl::StatusOr<std::vector<WaveStep>> ParseWaves(const Reader& r, const YAML::Node& node,
                                                 const std::string& field) {
  if (!node.IsSequence() || node.size() == 0) {
    return r.Error(node, field, "a list of wave sizes (like [1, \"5%\", \"25%\", \"100%\"])");
  }
  std::vector<WaveStep> steps;
  double last_percent = 0;
  uint32_t last_count = 0;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string f = absl::StrCat(field, "[", i, "]");
    const YAML::Node& n = node[i];
    WaveStep s;
    if (n.IsScalar() && absl::EndsWith(n.Scalar(), "%")) {
      if (!absl::SimpleAtod(absl::StripSuffix(n.Scalar(), "%"), &s.percent) || s.percent <= 0 ||
          s.percent > 100) {
        return r.Error(n, f, "a percent must be in (0%, 100%]");
      }
      if (s.percent <= last_percent) {
        return r.Error(n, f, "waves are cumulative: each percent larger than the one before");
      }
      last_percent = s.percent;
    } else {
      auto c = r.Number(n, f, 1, 1e6);
      if (!c.ok()) return r.Error(n, f, "a host count (like 1) or a percent (like \"5%\")");
      if (*c != std::floor(*c)) return r.Error(n, f, "a count must be whole");
      s.count = static_cast<uint32_t>(*c);
      if (s.count <= last_count) {
        return r.Error(n, f, "waves are cumulative: each count larger than the one before");
      }
      last_count = s.count;
    }
    steps.push_back(s);
  }
  return steps;
}

}  // namespace

uint32_t FailureBudget::Allowed(size_t hosts) const {
  if (percent < 0) return count;
  return static_cast<uint32_t>(std::floor(percent / 100.0 * static_cast<double>(hosts) + 1e-9));
}

absl::StatusOr<Playbook> ParsePlaybook(absl::string_view text, const std::string& file) {
  Reader r(file);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ": not YAML: ", e.msg));
  }
  Playbook p;
  p.file = file;
  p.digest = Sha256(text);
  try {
    int nodes = 0;
    PB_CHECK(CheckTree(r, root, 0, &nodes));
    PB_CHECK(r.Mapping(root, "",
                       {"apiVersion", "kind", "metadata", "mode", "auto", "match", "remediation",
                        "rollout", "verify", "on_failure"}));
    for (const char* required : {"apiVersion", "kind", "metadata", "remediation"}) {
      if (!root[required]) return r.Error(root, required, "required");
    }
    std::string s;
    PB_ASSIGN(s, r.String(root["apiVersion"], "apiVersion"));
    if (s != "netagent/v1") return r.Error(root["apiVersion"], "apiVersion", "must be netagent/v1");
    PB_ASSIGN(s, r.String(root["kind"], "kind"));
    if (s != "Playbook") return r.Error(root["kind"], "kind", "must be Playbook");

    const YAML::Node meta = root["metadata"];
    PB_CHECK(r.Mapping(meta, "metadata", {"name", "description"}));
    if (!meta["name"]) return r.Error(meta, "metadata.name", "required");
    PB_ASSIGN(p.name, r.String(meta["name"], "metadata.name"));
    if (p.name.empty() || p.name.size() > 40 ||
        p.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
      return r.Error(meta["name"], "metadata.name",
                     "lower-case letters, digits and '-', at most 40 (it is part of the change id)");
    }
    if (meta["description"]) PB_ASSIGN(p.description, r.String(meta["description"], "metadata.description"));

    if (root["mode"]) {
      PB_ASSIGN(s, r.String(root["mode"], "mode"));
      if (s != "manual" && s != "auto") return r.Error(root["mode"], "mode", "manual or auto");
      p.auto_mode = s == "auto";
    }

    if (const YAML::Node m = root["match"]) {
      PB_CHECK(r.Mapping(m, "match", {"finding", "severity", "window", "targets"}));
      if (m["finding"]) {
        PB_ASSIGN(p.finding, r.String(m["finding"], "match.finding"));
        if (p.finding.empty() || p.finding.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
                                     std::string::npos) {
          return r.Error(m["finding"], "match.finding", "a rule id (netctl doctor --rules)");
        }
      }
      if (m["severity"]) {
        PB_ASSIGN(s, r.String(m["severity"], "match.severity"));
        if (!v1::Severity_Parse(absl::StrCat("SEVERITY_", absl::AsciiStrToUpper(s)),
                                &p.min_severity) ||
            p.min_severity == v1::SEVERITY_UNSPECIFIED) {
          return r.Error(m["severity"], "match.severity", "info, warning or critical");
        }
        if (p.finding.empty()) return r.Error(m["severity"], "match.severity", "needs match.finding");
      }
      if (m["window"]) {
        PB_ASSIGN(p.detect_window,
                  r.Duration(m["window"], "match.window", absl::Seconds(1), absl::Minutes(5)));
      }
      if (const YAML::Node t = m["targets"]) {
        if (!t.IsSequence()) return r.Error(t, "match.targets", "a list of target patterns");
        for (size_t i = 0; i < t.size(); ++i) {
          std::string g;
          PB_ASSIGN(g, r.String(t[i], absl::StrCat("match.targets[", i, "]")));
          p.target_globs.push_back(g);
        }
      }
    }

    const YAML::Node rem = root["remediation"];
    PB_CHECK(r.Mapping(rem, "remediation", {"from_finding", "kinds", "intent", "guards"}));
    if (rem["from_finding"]) PB_ASSIGN(p.from_finding, r.Bool(rem["from_finding"], "remediation.from_finding"));
    if (const YAML::Node k = rem["kinds"]) {
      if (!k.IsSequence() || k.size() == 0) {
        return r.Error(k, "remediation.kinds",
                       "a list of intent kinds (limits, datapath_block, ...)");
      }
      for (size_t i = 0; i < k.size(); ++i) {
        const std::string f = absl::StrCat("remediation.kinds[", i, "]");
        std::string kind;
        PB_ASSIGN(kind, r.String(k[i], f));
        if (IntentKinds().count(kind) == 0) {
          return r.Error(
              k[i], f,
              absl::StrCat("not an intent kind (", absl::StrJoin(IntentKinds(), ", "), ")"));
        }
        p.kinds.push_back(kind);
      }
    }
    if (rem["intent"]) {
      v1::TuningIntent in;
      PB_CHECK(ParseIntent(r, rem["intent"], "remediation.intent", &in));
      p.intent = in;
    }
    if (p.from_finding == p.intent.has_value()) {
      return r.Error(rem, "remediation", "give either from_finding: true or an intent");
    }
    if (p.from_finding && p.finding.empty()) {
      return r.Error(rem["from_finding"], "remediation.from_finding", "needs match.finding");
    }
    if (!p.kinds.empty() && !p.from_finding) {
      return r.Error(rem["kinds"], "remediation.kinds",
                     "only with from_finding (a literal intent is of one kind already)");
    }
    if (const YAML::Node g = rem["guards"]) {
      PB_CHECK(r.Mapping(g, "remediation.guards", {"max_step", "floor", "ceiling"}));
      if (g["max_step"]) PB_ASSIGN(p.guards.max_step, r.Number(g["max_step"], "remediation.guards.max_step", 1, 1e6));
      if (g["floor"]) PB_ASSIGN(p.guards.floor, r.Number(g["floor"], "remediation.guards.floor", -1e18, 1e18));
      if (g["ceiling"]) PB_ASSIGN(p.guards.ceiling, r.Number(g["ceiling"], "remediation.guards.ceiling", -1e18, 1e18));
      if (p.guards.floor && p.guards.ceiling && *p.guards.floor > *p.guards.ceiling) {
        return r.Error(g, "remediation.guards", "floor is above ceiling");
      }
      if (!p.intent || ExpressionKnobs(*p.intent).empty()) {
        return r.Error(g, "remediation.guards",
                       "guards bound expression values (value: \"max(current * 2, 4096)\"); this "
                       "intent has none");
      }
    }

    p.waves = {WaveStep{0, 100}};
    if (const YAML::Node ro = root["rollout"]) {
      PB_CHECK(r.Mapping(ro, "rollout",
                         {"waves", "max_failures", "max_failures_total", "pause", "confirm_within"}));
      if (ro["waves"]) PB_ASSIGN(p.waves, ParseWaves(r, ro["waves"], "rollout.waves"));
      if (ro["max_failures"]) PB_ASSIGN(p.max_failures, r.Budget(ro["max_failures"], "rollout.max_failures"));
      if (ro["max_failures_total"]) {
        PB_ASSIGN(p.max_failures_total, r.Budget(ro["max_failures_total"], "rollout.max_failures_total"));
      } else {
        p.max_failures_total = p.max_failures;
      }
      if (ro["pause"]) PB_ASSIGN(p.pause, r.Duration(ro["pause"], "rollout.pause", absl::ZeroDuration(), absl::Hours(6)));
      if (ro["confirm_within"]) {
        PB_ASSIGN(p.confirm_within, r.Duration(ro["confirm_within"], "rollout.confirm_within",
                                               absl::Seconds(10), absl::Hours(24)));
      }
    }

    if (const YAML::Node v = root["verify"]) {
      PB_CHECK(r.Mapping(v, "verify", {"window", "settle", "finding_clears", "success", "failure",
                                       "inconclusive"}));
      if (v["window"]) PB_ASSIGN(p.verify_window, r.Duration(v["window"], "verify.window", absl::Seconds(1), absl::Minutes(5)));
      if (v["settle"]) PB_ASSIGN(p.settle, r.Duration(v["settle"], "verify.settle", absl::ZeroDuration(), absl::Minutes(30)));
      p.finding_clears = !p.finding.empty();
      if (v["finding_clears"]) {
        PB_ASSIGN(p.finding_clears, r.Bool(v["finding_clears"], "verify.finding_clears"));
        if (p.finding_clears && p.finding.empty()) {
          return r.Error(v["finding_clears"], "verify.finding_clears", "needs match.finding");
        }
      }
      for (const char* list : {"success", "failure"}) {
        const YAML::Node l = v[list];
        if (!l) continue;
        const std::string f = absl::StrCat("verify.", list);
        if (!l.IsSequence()) return r.Error(l, f, "a list of conditions");
        for (size_t i = 0; i < l.size(); ++i) {
          CounterCondition c;
          PB_ASSIGN(c, ParseCondition(r, l[i], absl::StrCat(f, "[", i, "]"),
                                      std::string(list) == "failure"));
          (std::string(list) == "failure" ? p.failure : p.success).push_back(c);
        }
      }
      if (v["inconclusive"]) {
        PB_ASSIGN(s, r.String(v["inconclusive"], "verify.inconclusive"));
        if (s != "fail" && s != "pause") return r.Error(v["inconclusive"], "verify.inconclusive", "fail or pause");
        p.pause_on_inconclusive = s == "pause";
      }
    } else {
      p.finding_clears = !p.finding.empty();
    }
    if (!p.finding_clears && p.success.empty()) {
      return r.Error(root["verify"] ? root["verify"] : root, "verify",
                     "nothing to verify: give match.finding (it must clear) or success conditions");
    }

    if (root["on_failure"]) {
      PB_ASSIGN(s, r.String(root["on_failure"], "on_failure"));
      if (s != "rollback_all" && s != "rollback_failed") {
        return r.Error(root["on_failure"], "on_failure", "rollback_all or rollback_failed");
      }
      p.rollback_all = s == "rollback_all";
    }
    if (p.auto_mode && p.finding.empty()) {
      return r.Error(root["mode"], "mode", "auto needs match.finding (it runs when the finding opens)");
    }
    if (p.auto_mode && !p.from_finding) {
      return r.Error(root["mode"], "mode",
                     "auto applies the finding's own remediation only (remediation.from_finding: "
                     "true): the agent changes nothing its diagnosis did not propose");
    }
    if (p.auto_mode &&
        std::find(p.kinds.begin(), p.kinds.end(), "datapath_block") != p.kinds.end()) {
      return r.Error(rem["kinds"], "remediation.kinds", kNoAutoBlock);
    }
    if (p.auto_mode && p.confirm_within && *p.confirm_within <= p.settle + p.verify_window) {
      return r.Error(root["rollout"]["confirm_within"], "rollout.confirm_within",
                     absl::StrCat("the agent verifies after settle + window (",
                                  absl::FormatDuration(p.settle + p.verify_window),
                                  "): a change would roll back by itself before it is judged"));
    }
    if (const YAML::Node a = root["auto"]) {
      if (!p.auto_mode) return r.Error(a, "auto", "needs mode: auto");
      PB_CHECK(r.Mapping(a, "auto", {"max_changes_per_hour", "cooldown"}));
      if (a["max_changes_per_hour"]) {
        double n;
        PB_ASSIGN(n, r.Number(a["max_changes_per_hour"], "auto.max_changes_per_hour", 1, 60));
        if (n != std::floor(n)) {
          return r.Error(a["max_changes_per_hour"], "auto.max_changes_per_hour", "a count must be whole");
        }
        p.auto_max_per_hour = static_cast<uint32_t>(n);
      }
      if (a["cooldown"]) {
        PB_ASSIGN(p.auto_cooldown,
                  r.Duration(a["cooldown"], "auto.cooldown", absl::ZeroDuration(), absl::Hours(24 * 7)));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.mark.line + 1, ": ", e.msg));
  }
  return p;
}

std::vector<std::string> PlaybookCounters(const Playbook& p) {
  std::set<std::string> names;
  for (const auto& c : p.success) names.insert(c.counter);
  for (const auto& c : p.failure) names.insert(c.counter);
  return {names.begin(), names.end()};
}

std::vector<size_t> WaveSizes(const std::vector<WaveStep>& steps, size_t hosts) {
  std::vector<size_t> sizes;
  size_t done = 0;
  for (const auto& s : steps) {
    if (done >= hosts) break;
    size_t upto = s.percent > 0 ? static_cast<size_t>(std::ceil(
                                      s.percent / 100.0 * static_cast<double>(hosts) - 1e-9))
                                : s.count;
    upto = std::min(upto, hosts);
    if (upto > done) {
      sizes.push_back(upto - done);
      done = upto;
    }
  }
  while (done < hosts && !sizes.empty()) {
    const size_t n = std::min(sizes.back(), hosts - done);
    sizes.push_back(n);
    done += n;
  }
  return sizes;
}

absl::Duration EstimateRunTime(const Playbook& p, size_t waves, absl::Duration per_call) {
  const bool detects = !p.finding.empty() || !p.success.empty() || !p.failure.empty();
  return (detects ? p.detect_window : absl::ZeroDuration()) + per_call +
         RestOfRun(p, waves, per_call);
}

absl::Duration RestOfRun(const Playbook& p, size_t waves_left, absl::Duration per_call) {
  absl::Duration t;
  for (size_t i = 0; i < waves_left; ++i) {
    t += per_call + p.settle + p.verify_window + per_call;
    if (i > 0) t += p.pause;
  }
  return t + per_call;
}

absl::Duration DefaultConfirmWithin(absl::Duration estimate) {
  return std::min(estimate * 1.5 + absl::Minutes(5), absl::Hours(24));
}

// --- expressions --------------------------------------------------------

namespace {

class Expr {
 public:
  Expr(absl::string_view text, std::optional<double> current) : s_(text), current_(current) {}

  absl::StatusOr<double> Parse() {
    auto v = Sum();
    if (!v.ok()) return v;
    Space();
    if (pos_ != s_.size()) return Fail("unexpected text");
    return v;
  }

 private:
  absl::Status Fail(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", s_, "\": ", what, " at position ", pos_ + 1,
                     " (numbers, current, + - * /, min(...), max(...))"));
  }
  void Space() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::StatusOr<double> Sum() {
    auto a = Product();
    if (!a.ok()) return a;
    double v = *a;
    while (true) {
      if (Eat('+')) {
        auto b = Product();
        if (!b.ok()) return b;
        v += *b;
      } else if (Eat('-')) {
        auto b = Product();
        if (!b.ok()) return b;
        v -= *b;
      } else {
        return v;
      }
    }
  }
  absl::StatusOr<double> Product() {
    auto a = Unary();
    if (!a.ok()) return a;
    double v = *a;
    while (true) {
      if (Eat('*')) {
        auto b = Unary();
        if (!b.ok()) return b;
        v *= *b;
      } else if (Eat('/')) {
        auto b = Unary();
        if (!b.ok()) return b;
        if (*b == 0 && current_) return Fail("division by zero");
        v = *b == 0 ? 0 : v / *b;
      } else {
        return v;
      }
    }
  }
  absl::StatusOr<double> Unary() {
    if (Eat('-')) {
      auto v = Unary();
      if (!v.ok()) return v;
      return -*v;
    }
    return Primary();
  }
  absl::StatusOr<double> Primary() {
    Space();
    if (Eat('(')) {
      auto v = Sum();
      if (!v.ok()) return v;
      if (!Eat(')')) return Fail("expected ')'");
      return v;
    }
    if (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.')) {
      size_t end = pos_;
      while (end < s_.size() &&
             (std::isdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '.'))
        ++end;
      double v;
      if (!absl::SimpleAtod(s_.substr(pos_, end - pos_), &v)) return Fail("bad number");
      pos_ = end;
      if (pos_ < s_.size()) {
        const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(s_[pos_])));
        if (u == 'K' || u == 'M' || u == 'G') {
          v *= u == 'K' ? 1024.0 : u == 'M' ? 1048576.0 : 1073741824.0;
          ++pos_;
        }
      }
      return v;
    }
    size_t end = pos_;
    while (end < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[end])) || s_[end] == '_'))
      ++end;
    const std::string name(s_.substr(pos_, end - pos_));
    if (name.empty()) return Fail("expected a number, current or a function");
    pos_ = end;
    if (name == "current") return current_.value_or(1);
    if (name != "min" && name != "max") return Fail(absl::StrCat("unknown name \"", name, "\""));
    if (!Eat('(')) return Fail("expected '('");
    std::vector<double> args;
    do {
      auto v = Sum();
      if (!v.ok()) return v;
      args.push_back(*v);
    } while (Eat(','));
    if (!Eat(')')) return Fail("expected ')' or ','");
    return name == "min" ? *std::min_element(args.begin(), args.end())
                         : *std::max_element(args.begin(), args.end());
  }

  absl::string_view s_;
  std::optional<double> current_;
  size_t pos_ = 0;
};

std::optional<double> Num(const std::string& s) {
  double v;
  if (s.empty() || !absl::SimpleAtod(s, &v)) return std::nullopt;
  return v;
}

}  // namespace

bool IsExpression(absl::string_view value) {
  for (const char* w : {"current", "min(", "max(", "+", "*", "/"}) {
    if (absl::StrContains(value, w)) return true;
  }
  return false;
}

absl::Status CheckExpression(absl::string_view expr) {
  if (expr.size() > 200) return absl::InvalidArgumentError("an expression of at most 200 characters");
  return Expr(expr, std::nullopt).Parse().status();
}

absl::StatusOr<double> EvaluateExpression(absl::string_view expr, double current) {
  if (auto st = CheckExpression(expr); !st.ok()) return st;
  return Expr(expr, current).Parse();
}

absl::StatusOr<std::string> ResolveSetting(absl::string_view expr, const Guards& guards,
                                           const KnobBounds& knob, std::string* why) {
  const auto current = Num(knob.value);
  if (!current) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the current value \"", knob.value, "\" is not one number: write the value out"));
  }
  auto v = EvaluateExpression(expr, *current);
  if (!v.ok()) return v.status();
  double x = std::round(*v);
  std::vector<std::string> held;
  auto bound = [&](double lo, double hi, const std::string& what) {
    if (x > hi) {
      x = hi;
      held.push_back(what);
    } else if (x < lo) {
      x = lo;
      held.push_back(what);
    }
  };
  const double inf = 1e300;
  if (guards.max_step && *current > 0) {
    bound(std::ceil(*current / *guards.max_step), std::floor(*current * *guards.max_step),
          absl::StrCat("max_step ", *guards.max_step));
  }
  bound(guards.floor.value_or(-inf), guards.ceiling.value_or(inf), "the playbook's floor/ceiling");
  if (knob.max_step > 0 && *current > 0) {
    bound(std::ceil(*current / knob.max_step), std::floor(*current * knob.max_step),
          absl::StrCat("the knob's max step ", knob.max_step));
  }
  bound(Num(knob.floor).value_or(-inf), Num(knob.ceiling).value_or(inf),
        absl::StrCat("the knob's bounds ", knob.floor.empty() ? "-" : knob.floor, "..",
                     knob.ceiling.empty() ? "-" : knob.ceiling));
  if (why) {
    *why = absl::StrCat(expr, " = ", absl::StrFormat("%.0f", std::round(*v)), " with current ",
                        knob.value);
    if (!held.empty()) absl::StrAppend(why, "; held to ", absl::StrFormat("%.0f", x), " by ",
                                       absl::StrJoin(held, ", "));
  }
  return absl::StrFormat("%.0f", x);
}

const std::set<std::string>& IntentKinds() {
  static const std::set<std::string>* kinds = [] {
    auto* out = new std::set<std::string>;
    const auto* oneof = v1::TuningIntent::descriptor()->FindOneofByName("intent");
    for (int i = 0; i < oneof->field_count(); ++i) out->insert(oneof->field(i)->name());
    return out;
  }();
  return *kinds;
}

std::string IntentKind(const v1::TuningIntent& intent) {
  const auto* oneof = v1::TuningIntent::descriptor()->FindOneofByName("intent");
  const auto* field = intent.GetReflection()->GetOneofFieldDescriptor(intent, oneof);
  return field ? field->name() : "";
}

absl::Status CheckRemediationKind(const Playbook& p, const v1::TuningIntent& intent) {
  const std::string kind = IntentKind(intent);
  if (p.auto_mode && kind == "datapath_block") return absl::FailedPreconditionError(kNoAutoBlock);
  if (p.kinds.empty()) return absl::OkStatus();
  if (std::find(p.kinds.begin(), p.kinds.end(), kind) != p.kinds.end()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("the finding proposes a ", kind.empty() ? "change of no kind" : kind,
                   " change here; this playbook applies only ", absl::StrJoin(p.kinds, ", ")));
}

std::vector<std::string> ExpressionKnobs(const v1::TuningIntent& intent) {
  std::vector<std::string> out;
  const google::protobuf::RepeatedPtrField<v1::Setting>* settings = nullptr;
  if (intent.has_limits()) settings = &intent.limits().settings();
  if (intent.has_sysctl()) settings = &intent.sysctl().settings();
  if (!settings) return out;
  for (const auto& s : *settings)
    if (IsExpression(s.value())) out.push_back(s.name());
  return out;
}

v1::PlaybookVerdict Judge(const Playbook& p, const HostFigures& now, const HostFigures* baseline,
                          std::vector<v1::PlaybookMeasurement>* figures) {
  bool all_success = true, any_failure = false, unmeasured = false, still_open = false;
  auto add = [&](const std::string& name, double value, std::optional<double> base,
                 const std::string& cond, bool met) {
    if (!figures) return;
    v1::PlaybookMeasurement m;
    m.set_name(name);
    m.set_value(value);
    if (base) m.set_baseline(*base);
    m.set_condition(cond);
    m.set_met(met);
    figures->push_back(m);
  };
  auto rate = [&](const HostFigures& f, const std::string& c) -> std::optional<double> {
    auto it = f.rates.find(c);
    if (it == f.rates.end()) return std::nullopt;
    return it->second;
  };
  if (p.finding_clears) {
    const bool cleared = !now.finding_open;
    if (!cleared) still_open = true;
    std::optional<double> base;
    if (baseline) base = baseline->finding_open ? 1 : 0;
    add(absl::StrCat("finding ", p.finding), now.finding_open ? 1 : 0, base, "cleared", cleared);
  }
  for (const auto& c : p.success) {
    auto r = rate(now, c.counter);
    std::optional<double> base = baseline ? rate(*baseline, c.counter) : std::nullopt;
    std::vector<std::string> want;
    if (c.rate_below) want.push_back(absl::StrCat("below ", *c.rate_below));
    if (c.better_than_baseline) {
      want.push_back(absl::StrCat("at least ", *c.better_than_baseline, "x the baseline"));
    }
    std::string cond = absl::StrJoin(want, " and ");
    if (!r || (c.better_than_baseline && !base)) {
      unmeasured = true;
      all_success = false;
      add(absl::StrCat(c.counter, " rate"), r.value_or(0), base,
          absl::StrCat(cond,
                       r ? " (no baseline: not measured before the change)" : " (not measured)"),
          false);
      continue;
    }
    bool met = !c.rate_below || *r < *c.rate_below;
    // A rate that was 0 and is still 0 is not better by any factor; one
    // that should rise and fell is worse, not inconclusive.
    if (c.better_than_baseline) {
      met = met && *r > 0 && *r >= *base * *c.better_than_baseline;
      if (*r < *base) {
        any_failure = true;
        cond += " (it fell)";
      }
    }
    if (!met) all_success = false;
    add(absl::StrCat(c.counter, " rate"), *r, base, cond, met);
  }
  for (const auto& c : p.failure) {
    auto r = rate(now, c.counter);
    std::optional<double> base = baseline ? rate(*baseline, c.counter) : std::nullopt;
    if (!r || (c.worse_than_baseline && !base)) {
      unmeasured = true;
      add(absl::StrCat(c.counter, " rate"), r.value_or(0), base,
          r ? "a baseline (not measured before the change)" : "a figure (not measured)", false);
      continue;
    }
    bool bad = *r > c.rate_above;
    std::string cond = absl::StrCat("at most ", c.rate_above);
    if (c.worse_than_baseline) {
      bad = bad && *r > *base * *c.worse_than_baseline;
      cond = absl::StrCat("at most ", *c.worse_than_baseline, "x the baseline",
                          c.rate_above > 0 ? absl::StrCat(" or ", c.rate_above) : "");
    }
    if (bad) any_failure = true;
    add(absl::StrCat(c.counter, " rate"), *r, base, cond, !bad);
  }
  // The finding still open means the change did not help: no figure can
  // make that inconclusive.
  if (any_failure || still_open) return v1::PLAYBOOK_VERDICT_FAILURE;
  if (all_success && !unmeasured) return v1::PLAYBOOK_VERDICT_SUCCESS;
  if (p.failure.empty() && !unmeasured) return v1::PLAYBOOK_VERDICT_FAILURE;
  return v1::PLAYBOOK_VERDICT_INCONCLUSIVE;
}

}  // namespace netagent::playbook
