// SPDX-License-Identifier: GPL-2.0
/* The benchmark's floor: what BPF_PROG_TEST_RUN costs around any XDP program. */
/* vmlinux.h first: the helper headers need its types. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
/* clang-format on */

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_empty(struct xdp_md* ctx) { return XDP_PASS; }
