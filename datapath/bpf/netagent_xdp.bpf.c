// SPDX-License-Identifier: GPL-2.0
/* netagent's XDP fast path: the verdict pipeline of netagent_guard.h on the
 * XDP hook. */
/* vmlinux.h first: the helper headers need its types. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "netagent_dp.h"
/* clang-format on */

#define NA_CTX struct xdp_md
#define NA_DROP XDP_DROP
#define NA_PASS XDP_PASS
#define NA_RETRY (-1)
/* Pointer subtraction: the verifier allows it with CAP_PERFMON. */
#define NA_LEN(ctx) ((ctx)->data_end - (ctx)->data)
#define NA_SHORT(ctx) 0 /* an XDP buffer is all directly readable */
#define NA_LOAD_BYTES(ctx, off, to, n) bpf_xdp_load_bytes(ctx, off, to, n)
#define NA_RX_QUEUE(ctx) ((ctx)->rx_queue_index)
#include "netagent_guard.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int netagent_xdp(struct xdp_md* ctx) {
  if (NA_PRESET) return na_pipeline(ctx, 1, 1);
  return na_pipeline(ctx, 0, 1);
}
