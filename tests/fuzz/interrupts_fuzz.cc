// /proc/interrupts, and which of its action names belong to a device.
#include "collectors/nic_queues.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  for (const auto& [irq, line] : collectors::ParseInterrupts(fuzz::Text(data, size))) {
    (void)collectors::ActionsNameDevice(line.name, "eth0");
    (void)collectors::ActionsNameDevice(line.name, "virtio0");
  }
  return 0;
}
