// SPDX-License-Identifier: GPL-2.0
/* The floor of tests/bench/drop_reasons.sh: a program on the same tracepoint
 * (tp_btf/kfree_skb) that does nothing, so what any program attached there
 * costs (the tracepoint's call into BPF) is told apart from what the
 * collector's own work costs. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
/* clang-format on */

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_empty, struct sk_buff* skb) { return 0; }
