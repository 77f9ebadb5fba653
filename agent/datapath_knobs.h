// The fast path's block rules as tuning knobs ("<dev>:xdp-block/<prefix>",
// on or off): the tuning manager then journals a block, confirms it, expires
// it at its deadline, rolls it back and watches it for drift like any other
// change, and a playbook can roll one out. tuners/ cannot reach the datapath
// manager, so the agent puts this in front of the system's knobs.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "datapath/manager.h"
#include "tuners/planners.h"
#include "tuners/system.h"

namespace netagent::agent {

// The comment of the rules the agent adds for a block: a block rule of the
// same prefix with any other comment is an operator's, which the agent
// reads as "operator" (tuners::kBlockOperator) and never removes.
inline constexpr char kTuningRuleComment[] = "netagent tuning (netctl tune history)";

class DatapathKnobs : public tuners::KnobIo {
 public:
  // `dp` null: the fast path is off (`off_reason` says why); its blocks can
  // then be neither read nor written (pins an earlier agent left may still
  // drop). Writes of `failing` keys fail before touching anything
  // (--fault-inject-write).
  DatapathKnobs(std::unique_ptr<tuners::KnobIo> system,
                std::shared_ptr<datapath::DatapathManager> dp, std::string off_reason,
                std::set<std::string> failing);

  // on: the agent's own rule blocks the prefix; operator: only someone
  // else's does; off: none does. A device this agent runs no fast path on
  // reads off, unless an XDP program it does not manage is attached there
  // (FAILED_PRECONDITION: unknown).
  absl::StatusOr<std::string> Read(const std::string& key) override;
  // on: adds the agent's rule (FAILED_PRECONDITION on a device without the
  // fast path or its blocklist); off: removes the agent's rule of exactly
  // that prefix, never an operator's (none there: nothing to do).
  absl::Status Write(const std::string& key, const std::string& value) override;

 private:
  std::unique_ptr<tuners::KnobIo> system_;
  std::shared_ptr<datapath::DatapathManager> dp_;
  std::string off_reason_;
  std::set<std::string> failing_;
};

// What the planners need of the fast path on `device`: whether its blocks
// can be written, and which prefixes it blocks and allows.
tuners::DatapathState DatapathStateOf(datapath::DatapathManager* dp, const std::string& off_reason,
                                      const std::string& device);

}  // namespace netagent::agent
