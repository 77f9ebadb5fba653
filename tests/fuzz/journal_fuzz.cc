// The change journal as the agent loads it at start. A journal that loads
// must save to text that loads back to the same journal: a journal the agent
// wrote and then cannot read stops it from starting.
#include "tests/fuzz/fuzz_support.h"
#include "tuners/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  auto journal = tuners::Journal::FromYaml(std::string(fuzz::Text(data, size)), "journal");
  if (!journal.ok()) return 0;
  const std::string saved = journal->ToYaml();
  auto again = tuners::Journal::FromYaml(saved, "journal");
  if (!again.ok()) {
    std::fprintf(stderr, "saved journal does not load: %s\n%s\n",
                 std::string(again.status().message()).c_str(), saved.c_str());
  }
  FUZZ_CHECK(again.ok());
  if (again->ToYaml() != saved) {
    std::fprintf(stderr, "saved journal loads back different:\n%s\n---- saved again:\n%s\n",
                 saved.c_str(), again->ToYaml().c_str());
  }
  FUZZ_CHECK(again->ToYaml() == saved);
  journal->Prune(2);
  return 0;
}
