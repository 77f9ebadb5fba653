// SPDX-License-Identifier: GPL-2.0
/* The XDP guard's verdict pipeline (netagent_guard.h) as a TC (clsact)
 * ingress program, for devices without native XDP: same maps, switches,
 * reasons and counters. A pass returns TC_ACT_UNSPEC, not TC_ACT_OK, so the
 * filters after it on the hook (our accounting program, anyone's) still see
 * the packet; a drop is TC_ACT_SHOT.
 *
 * The parser reads headers directly, which needs them in the skb's linear
 * part. Drivers usually put all of them there; when one is not (the parse
 * fails while the skb has more data than its linear part), the first
 * NA_TC_PULL bytes are pulled in and the pipeline runs again, so only such
 * packets pay for the copy. */
/* vmlinux.h first: the helper headers need its types. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "netagent_dp.h"
/* clang-format on */

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define NA_TC_PULL 1024

#define NA_CTX struct __sk_buff
#define NA_DROP TC_ACT_SHOT
#define NA_PASS TC_ACT_UNSPEC
#define NA_RETRY 0x7fff
#define NA_LEN(ctx) ((ctx)->len)
/* Pointer subtraction: the verifier allows it with CAP_PERFMON. */
#define NA_SHORT(ctx) ((ctx)->data_end - (ctx)->data < (ctx)->len)
#define NA_LOAD_BYTES(ctx, off, to, n) bpf_skb_load_bytes(ctx, off, to, n)
/* The driver records queue + 1; 0 means not recorded. */
#define NA_RX_QUEUE(ctx) ((ctx)->queue_mapping ? (ctx)->queue_mapping - 1 : 0)
#include "netagent_guard.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int guard(struct __sk_buff* skb, const int preset) {
  int verdict = na_pipeline(skb, preset, 0);
  if (verdict != NA_RETRY) return verdict;
  bpf_skb_pull_data(skb, skb->len < NA_TC_PULL ? skb->len : NA_TC_PULL);
  return na_pipeline(skb, preset, 1);
}

SEC("tc")
int netagent_tc_guard(struct __sk_buff* skb) {
  if (NA_PRESET) return guard(skb, 1);
  return guard(skb, 0);
}
