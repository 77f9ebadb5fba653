// libbpf's messages, every one through a single hook set once per process:
// to the agent's log (debug for libbpf's info and debug lines, warn for its
// warnings), or, on a thread inside a LibbpfLogCapture, into that capture
// instead. A load that fails puts the end of the verifier's log into the
// error it returns; an error that is an expected answer (an empty TC slot
// queried) is captured and dropped.
#pragma once

#include <string>

namespace netagent::datapath {

// Idempotent; every entry point of the loader and the manager calls it.
void InstallLibbpfLog();

class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  void Append(const char* text);
  // The last `max` bytes of what was captured, from a line start.
  std::string Tail(size_t max = 2048) const;

 private:
  std::string text_;
  LibbpfLogCapture* outer_;
};

}  // namespace netagent::datapath
