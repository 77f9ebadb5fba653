// SPDX-License-Identifier: GPL-2.0
/* The benchmark's floor: what BPF_PROG_TEST_RUN costs around any XDP program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_empty(struct xdp_md *ctx) {
  return XDP_PASS;
}
