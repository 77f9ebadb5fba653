// netagentd's YAML configuration file, as main() reads it: settings parsed,
// applied onto the defaults and checked across fields.
#include "agent/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  auto settings = agent::ParseYamlSettings(std::string(fuzz::Text(data, size)));
  if (!settings.ok()) return 0;
  agent::AgentConfig cfg;
  if (!agent::ApplySettings(*settings, cfg).ok()) return 0;
  (void)agent::ValidateConfig(cfg);
  if (cfg.listen) (void)cfg.listen->ToGrpc();
  return 0;
}
