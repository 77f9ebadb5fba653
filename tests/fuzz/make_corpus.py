#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz from tests/fixtures.

Netlink recordings are split into their datagrams (the harnesses take one
datagram each, as ParseReply gets one per recv()); the netlink_reply harness
also gets the recordings whole. procfs files are copied. Messages, frames,
records and files no fixture has (qstats, ethtool stats and RSS, errors with
extended acks, packets, pinned records, configs, journals) are built here the
way the kernel or the agent lays them out.

Seeds are named seed-*; this script replaces those and leaves every other file
alone: inputs a fuzzer found (crash-*, regress-*) stay in the corpus.

Usage: tests/fuzz/make_corpus.py   (from anywhere; stdlib only)
"""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"

seeds = {}  # harness -> {name: bytes}


def seed(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    seeds.setdefault(harness, {})[name] = data


# --- netlink -----------------------------------------------------------------

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_MULTI, NLM_F_DUMP_INTR = 0x2, 0x20
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200


def align4(b):
    return b + b"\0" * (-len(b) % 4)


def attr(kind, payload):
    return align4(struct.pack("<HH", 4 + len(payload), kind) + payload)


def nest(kind, *attrs):
    return attr(kind | 0x8000, b"".join(attrs))


def u8(kind, v):
    return attr(kind, struct.pack("<B", v))


def u32(kind, v):
    return attr(kind, struct.pack("<I", v))


def u64(kind, v):
    return attr(kind, struct.pack("<Q", v))


def string(kind, s):
    return attr(kind, s.encode() + b"\0")


def message(kind, payload, flags=0, seq=1, pid=1):
    return align4(struct.pack("<IHHII", 16 + len(payload), kind, flags, seq, pid) + payload)


def genl(cmd, *attrs):
    return struct.pack("<BBH", cmd, 1, 0) + b"".join(attrs)


def done(err=0, flags=NLM_F_MULTI):
    return message(NLMSG_DONE, struct.pack("<i", err), flags)


def recording(*datagrams):
    return b"".join(struct.pack("<I", len(d)) + d for d in datagrams)


def datagrams(rec):
    out, off = [], 0
    while off + 4 <= len(rec):
        (n,) = struct.unpack_from("<I", rec, off)
        out.append(rec[off + 4 : off + 4 + n])
        off += 4 + n
    return out


# Fixture prefix -> harness, and the bytes before the first message's
# attributes (nlmsghdr + family header) for netlink_attrs.
NETLINK_HARNESS = {
    "rtnl_links": ("links", 16 + 16),
    "sock_diag": ("sock_diag", 16 + 72),
    "ctnetlink": ("conntrack", 16 + 4),
    "genl_family": ("genl", 16 + 4),
    "netdev_dev_get": ("genl", 16 + 4),
    "ethtool": ("ethtool", 16 + 4),
}

for path in sorted((FIXTURES / "netlink").glob("*/*.bin")):
    rec = path.read_bytes()
    tag = f"{path.parent.name}-{path.stem}"
    seed("netlink_reply", f"seed-{tag}.rec", rec)
    harness, attrs_at = next(v for p, v in NETLINK_HARNESS.items() if path.name.startswith(p))
    for i, d in enumerate(datagrams(rec)):
        seed(harness, f"seed-{tag}.{i}", d)
        (first_len,) = struct.unpack_from("<I", d)
        if first_len > attrs_at:
            seed("netlink_attrs", f"seed-{tag}.{i}", d[attrs_at:first_len])

# Errors and ends of dumps as the kernel sends them (netlink_reply).
extack = string(1, "requires CAP_NET_ADMIN in this namespace")  # NLMSGERR_ATTR_MSG
request = struct.pack("<IHHII", 16, 100, 0x301, 1, 1)
capped = struct.pack("<i", -1) + request + extack
uncapped = struct.pack("<i", -22) + struct.pack("<IHHII", 20, 100, 1, 1, 1) + b"\0" * 4 + extack
for name, d in {
    "ack": message(NLMSG_ERROR, struct.pack("<i", 0) + request, NLM_F_CAPPED),
    "error-extack": message(NLMSG_ERROR, capped, NLM_F_CAPPED | NLM_F_ACK_TLVS),
    "error-uncapped": message(NLMSG_ERROR, uncapped, NLM_F_ACK_TLVS),
    "done-error": message(100, b"", NLM_F_MULTI) + done(-95),
    "interrupted": message(100, b"", NLM_F_MULTI | NLM_F_DUMP_INTR) + done(0, NLM_F_MULTI | NLM_F_DUMP_INTR),
    "leftover": message(100, b"", NLM_F_MULTI, seq=7) + message(101, b"", NLM_F_MULTI) + done(),
}.items():
    seed("netlink_reply", f"seed-{name}", d)
    seed("netlink_reply", f"seed-{name}.rec", recording(d))

# ethtool replies the fixtures lack: standard stats groups (one STAT nest per
# counter, one HIST nest per bucket), RSS, rings, pause, two string sets.
header = nest(1, u32(1, 7), string(2, "eth0"))
stats = genl(
    33,  # ETHTOOL_MSG_STATS_GET_REPLY
    nest(2, u32(1, 7), string(2, "eth0")),
    nest(4, u32(2, 1), u32(3, 22), nest(4, u64(2, 1000)), attr(1, b""), nest(4, u64(14, 1 << 40))),
    nest(4, u32(2, 3), u32(3, 24),
         nest(5, u32(7, 0), u32(8, 64), u64(9, 10)),
         nest(5, u32(7, 65), u32(8, 127), u64(9, 11)),
         nest(6, u32(7, 1519), u32(8, 0), u64(9, 12)),
         nest(4, u64(0, 8))),
)
seed("ethtool", "seed-stats", message(20, stats))
rss = genl(38, header, u32(3, 1), attr(4, struct.pack("<8I", 0, 1, 0, 1, 2, 3, 2, 3)),
           attr(5, bytes(range(40))))
seed("ethtool", "seed-rss", message(20, rss))
seed("ethtool", "seed-rings", message(20, genl(16, header, u32(2, 4096), u32(5, 4096), u32(6, 256),
                                              u32(9, 256), u8(11, 1), u32(17, 0))))
seed("ethtool", "seed-pause", message(20, genl(22, header, u8(2, 1), u8(3, 1), u8(4, 0))))


def strings(names):
    return nest(3, *(nest(1, u32(1, i), string(2, n)) for i, n in enumerate(names)))


strset = genl(
    1,
    header,
    nest(2,
         nest(1, u32(1, 2), u32(2, 3), strings(["tx-scatter-gather", "tx-checksum-ipv4", "rx-gro"])),
         nest(1, u32(1, 12), u32(2, 3), strings(["toeplitz", "xor", "crc32"]))),
)
seed("ethtool", "seed-strset-two-sets", message(20, strset))

# netdev qstats (6.9+): ifindex, queue type and id, then counters (8..).
for qtype, qid, counters in [(0, 0, [(8, 1000), (9, 64000), (12, 2)]), (1, 3, [(10, 5), (33, 1)])]:
    attrs = [u32(1, 2), u32(2, qtype), u32(3, qid)] + [u64(k, v) for k, v in counters]
    seed("qstats", f"seed-queue-{qtype}-{qid}",
         message(24, genl(12, *attrs), NLM_F_MULTI) + done())

# --- procfs and sysfs ----------------------------------------------------------

PROCFS = {
    "softnet_stat": "softnet",
    "snmp": "counters",
    "netstat": "counters",
    "snmp6": "counters",
    "nf_conntrack_stat": "conntrack_stat",
    "interrupts": "interrupts",
    "cpu_online": "cpus",
    "sockstat": "sockstat",
    "sockstat6": "sockstat",
    "arp_cache": "neighbour",
    "ndisc_cache": "neighbour",
    "softirqs": "softirqs",
}
for path in sorted((FIXTURES / "procfs").glob("*/*")):
    harness = PROCFS.get(path.name.split(".")[0])
    if harness:
        seed(harness, f"seed-{path.parent.name}-{path.name}", path.read_bytes())

# Windows: the file before, a NUL, the file after.
softnet = (FIXTURES / "procfs/synthetic/softnet_stat.13col").read_bytes()
seed("softnet", "seed-window-wrap", softnet + b"\0" + softnet.replace(b"ffffffff", b"00000010"))
snmp = (FIXTURES / "procfs/linux-6.18/snmp").read_bytes()
seed("counters", "seed-window", snmp + b"\0" + snmp.replace(b" 1 ", b" 7 "))
seed("counters", "seed-sctp", "SctpCurrEstab 1\nSctpActiveEstabs 4\nSctpInSCTPPacks 100\n")

for i, text in enumerate(["0-3,8,10-11", "0-15:2/4", "", "7\n", "0,1,2,3"]):
    seed("cpus", f"seed-list-{i}", text)
for i, text in enumerate(["ff,00000001", "3", "00000000,0000ff00", "0\n"]):
    seed("cpus", f"seed-mask-{i}", text)

# --- the fast path -------------------------------------------------------------


def ether(ethertype, payload, vlans=()):
    frame = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02"
    for tpid, vid in vlans:
        frame += struct.pack(">HH", tpid, vid)
    return frame + struct.pack(">H", ethertype) + payload


def ipv4(proto, l4, frag=0, options=b""):
    ihl = 5 + len(options) // 4
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(l4), 1, frag, 64,
                       proto, 0, bytes([192, 0, 2, 7]), bytes([10, 0, 0, 1])) + options + l4


def ipv6(next_header, rest):
    return struct.pack(">IHBB16s16s", 6 << 28, len(rest), next_header, 64,
                       bytes.fromhex("20010db8000000000000000000000007"),
                       bytes.fromhex("20010db8000000000000000000000001")) + rest


tcp_syn = struct.pack(">HHIIBBHHH", 40000, 443, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
udp = struct.pack(">HHHH", 5353, 53, 12, 0) + b"abcd"
for name, frame in {
    "tcp4-syn": ether(0x0800, ipv4(6, tcp_syn)),
    "udp4-qinq": ether(0x0800, ipv4(17, udp), [(0x88a8, 10), (0x8100, 20)]),
    "ip4-options": ether(0x0800, ipv4(6, tcp_syn, options=b"\x01\x01\x01\x00")),
    "ip4-later-fragment": ether(0x0800, ipv4(17, udp, frag=0x0010)),
    "icmp4": ether(0x0800, ipv4(1, b"\x08\x00\0\0\0\1\0\1")),
    "tcp6-hbh-frag": ether(0x86DD, ipv6(0, b"\x2c\0" + b"\0" * 6 + b"\x06\0\0\0\0\0\0\x01" + tcp_syn)),
    "icmp6": ether(0x86DD, ipv6(58, b"\x80\x00\0\0\0\1\0\1")),
    "arp": ether(0x0806, b"\0\1\x08\0\6\4\0\1" + b"\0" * 20),
    "truncated": ether(0x0800, b"\x45\0"),
}.items():
    seed("packet_decode", f"seed-{name}", frame)


def dp_meta(revision, flags, note):
    return struct.pack("<IIQqIIIIIIQQQQ128s", 1, 0, revision, 1_780_000_000_000_000_000, flags, 24,
                       64, 100, 50, 1400, 200, 400, 2000, 4000, note.encode())


def rule_meta(kind, action, family=0, plen=0, addr=b"", port=0, flags=0, comment=""):
    c = comment.encode()
    return struct.pack("<BBBBBBBBHHI16s128s", 1, kind, action, family, plen, flags, len(c), 0,
                       port, 0, 0, addr.ljust(16, b"\0"), c)


seed("datapath_records", "seed-pickup",
     dp_meta(7, 0b0000111, "attached by netctl")
     + rule_meta(1, 2, 4, 24, bytes([203, 0, 113, 0]), comment="incident-4711")
     + rule_meta(1, 1, 4, 32, bytes([203, 0, 113, 9]))
     + rule_meta(1, 2, 6, 32, bytes.fromhex("20010db8"))
     + rule_meta(2, 2, port=443, flags=0b101)
     + rule_meta(1, 2, 4, 20, bytes([10, 1, 16, 0])))
seed("datapath_records", "seed-meta-only", dp_meta(1, 0, ""))

seed("datapath_rules", "seed-batches",
     "block 203.0.113.0/24 incident\nallow 203.0.113.9\nblock 10.0.0.0/8\n\n"
     "port 443 tcp syn\nblock 2001:db8::/32\nallow 2001:db8::1\n\n"
     "delete 2\nblock 10.1.0.0/16\nblock 10.1.2.0/23\n\nrevision 3\ndelete 1\n")
seed("datapath_rules", "seed-allow-beats-block",
     "block 192.0.2.1\n\nallow 192.0.2.1\n\ndelete 2\n\nblock 192.0.2.0/25\nblock 192.0.2.128/25\n")

# --- files and fields from operators and callers -------------------------------

seed("config", "seed-full",
     "socket: /run/netagent/netagent.sock\nsocket_group: netagent\nsocket_mode: \"0660\"\n"
     "listen: \"[::]:9470\"\ntls_cert: /etc/netagent/server.pem\ntls_key: /etc/netagent/server.key\n"
     "tls_client_ca: /etc/netagent/ca.pem\noperator_identities:\n  - dns:ops-a\n"
     "  - uri:spiffe://example.org/ops\nstate_dir: /var/lib/netagent\nlog_format: json\n"
     "log_level: debug\nshutdown_grace: 15s\nbpf_pin_root: /sys/fs/bpf/netagent\n")
seed("config", "seed-small", "listen: 127.0.0.1:9470\nlog_level: info\n")

seed("journal", "seed-journal",
     "version: 1\nbaseline:\n  net.core.rmem_max:\n    value: \"212992\"\n"
     "    seen: 2026-12-04T10:00:00Z\nchanges:\n"
     "  - id: c-1\n    created: 2026-12-04T10:00:01.5Z\n    caller: \"uid:0\"\n"
     "    intent: \"bdp 1gbit 200ms\"\n    digest: \"ab12\"\n    state: pending_confirm\n"
     "    confirm_deadline: 2026-12-04T10:01:01Z\n    knobs:\n"
     "      - {knob: \"net.core.rmem_max\", old: \"212992\", new: \"33554432\", reason: \"BDP\"}\n"
     "    events:\n      - {at: 2026-12-04T10:00:01Z, what: \"applied\"}\n"
     "    drift:\n      - {knob: \"net.core.rmem_max\", expected: \"33554432\", observed: \"212992\","
     " since: 2026-12-04T10:00:30Z}\n"
     "  - {id: c-0, created: 2026-12-03T09:00:00Z, state: rolled_back, knobs: [], events: []}\n")

# The journal's log (journal_log_fuzz.cc): a shape byte (1: framed, 3: framed
# with a torn last piece, 0: raw), then pieces split at NUL, each starting
# with its kind (4 change, 1 baseline, 2 events).
_change = ('changes:\n  - id: "c-2"\n    created: 2026-12-04T10:00:02Z\n    caller: "uid:0"\n'
           '    intent: "limits"\n    digest: "cd"\n    state: pending_confirm\n'
           '    confirm_deadline: 2026-12-04T10:01:02Z\n    knobs:\n'
           '      - {knob: "net.core.netdev_max_backlog", old: "1000", new: "4096", reason: ""}\n'
           '    events:\n      - {at: 2026-12-04T10:00:02Z, what: "applied"}\n    drift: []')
_rollback = _change.replace("pending_confirm", "rolled_back").replace('"c-2"', '"c-1"')
_baseline = 'baseline:\n  "net.core.somaxconn":\n    value: "4096"\n    seen: 2026-12-04T10:00:00Z'
_events = 'events:\n  - {at: 2026-12-04T10:00:03Z, what: "acknowledged by uid:0"}'
seed("journal_log", "seed-framed",
     b"\x01" + b"\0".join(x.encode() for x in ["\x04" + _change, "\x01" + _baseline,
                                               "\x02" + _events, "\x04" + _rollback]))
seed("journal_log", "seed-torn", b"\x03" + ("\x04" + _change).encode() + b"\0entry change 40 00")


def _fnv(b):
    h = 1469598103934665603
    for c in b:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def _entry(kind, body):
    body = body.encode()
    return b"entry %s %d %016x\n" % (kind.encode(), len(body) + 1, _fnv(body)) + body + b"\n"


seed("journal_log", "seed-raw",
     b"\x00netagent journal log 1 follows generation 1\n" + _entry("change", _change)
     + _entry("baseline", _baseline) + _entry("change", _rollback))

seed("targets", "seed-fleet",
     "# fleet\nnode-1\nnode-2:9471\n10.0.0.3\n[fd00::4]:9470\nfd00::5\n"
     "unix:///run/netagent/netagent.sock\n/run/other.sock\n\nnetagent.kube-system.svc:9470\n")

seed("request_fields", "seed-knobs",
     "knob net.ipv4.tcp_rmem|4096 131072 6291456|4096 262144 33554432\n"
     "knob eth0:rx-0/rps_cpus|00000000,0000ff00|ff\n"
     "knob irq/40/smp_affinity_list|0-3|2,3\n"
     "knob somaxconn|4096|65535\nknob eth0:channels/counts|4|8\n")
seed("request_fields", "seed-filters",
     "prefix 10.0.0.0/8\nports 1024-65535\nstates established,time-wait\nprotocol tcp\n"
     "ct-state SYN_RECV\nfilter ^Tcp(Ext)?Listen\ninterface eth0\nrule fd00::/64\n"
     "sysctl net.ipv4.tcp_congestion_control\nints 4096 131072 6291456\n")

# --- playbooks and run files ------------------------------------------------

for f in sorted((ROOT / "docs" / "playbooks").glob("*.yaml")):
    seed("playbook", "seed-" + f.stem, f.read_bytes())
seed("playbook", "seed-manual",
     "apiVersion: netagent/v1\nkind: Playbook\nmetadata: {name: m}\nmatch: {window: 2s, "
     "targets: [\"web-*\"]}\nremediation:\n  intent: {limits: {settings: [{name: somaxconn, "
     "value: \"max(current * 2, min(64K, current + 1024))\"}]}}\n  guards: {max_step: 4, "
     "floor: 128, ceiling: 65535}\nrollout: {waves: [1, \"5%\", 10, \"100%\"], max_failures: "
     "\"10%\", max_failures_total: 2, pause: 1s, confirm_within: 10m}\nverify: {window: 1s, "
     "settle: 0s, success: [{counter: TcpExtListenOverflows, rate_below: 1}], failure: "
     "[{counter: UdpNoPorts, worse_than_baseline: 2, rate_above: 20}], inconclusive: pause}\n"
     "on_failure: rollback_failed\n")
_t = ['{"display":"h%d","address":"unix:///run/h%d.sock"}' % (i, i) for i in range(2)]
_run = [
    '{"kind":"KIND_RUN_STARTED","run":"r1","started":{"playbook":"m","digest":"d",'
    '"changeId":"r1","targets":[%s],"confirmDeadline":"2030-01-01T00:00:00Z"}}' % ",".join(_t),
    '{"kind":"KIND_HOST_MATCHED","run":"r1","target":"h0","intent":{"limits":{"settings":'
    '[{"name":"somaxconn","value":"8192"}]}},"measurements":[{"name":"UdpNoPorts rate",'
    '"value":0}]}',
    '{"kind":"KIND_HOST_SKIPPED","run":"r1","target":"h1","detail":"unreachable"}',
    '{"kind":"KIND_RUN_PLANNED","run":"r1","waves":[{"number":1,"targets":["h0"]}]}',
    '{"kind":"KIND_WAVE_STARTED","run":"r1","wave":1}',
    '{"kind":"KIND_HOST_APPLYING","run":"r1","wave":1,"target":"h0"}',
    '{"kind":"KIND_HOST_CHANGED","run":"r1","wave":1,"target":"h0","knobs":[{"knob":'
    '"net.core.somaxconn","oldValue":"4096","newValue":"8192"}]}',
    '{"kind":"KIND_HOST_VERIFIED","run":"r1","wave":1,"target":"h0","verdict":'
    '"PLAYBOOK_VERDICT_SUCCESS"}',
    '{"kind":"KIND_WAVE_PASSED","run":"r1","wave":1}',
    '{"kind":"KIND_HOST_CONFIRMED","run":"r1","target":"h0"}',
    '{"kind":"KIND_RUN_FINISHED","run":"r1","state":"PLAYBOOK_RUN_STATE_SUCCEEDED"}',
]
seed("playbook", "seed-run", "\n".join(_run) + "\n")
seed("playbook", "seed-run-cut", "\n".join(_run[:6]) + "\n" + _run[6][:40])

# --- the BPF socket iterator's records (collectors/bpf/netagent_sockets.h) ------

# The first byte picks the read size, the second the HZ.
for path in sorted((FIXTURES / "bpf_iter").glob("*/*.bin")):
    walk = path.read_bytes()
    seed("socket_iter", f"seed-{path.parent.name}-{path.stem}", b"\x2d\x02" + walk)
    seed("socket_iter", f"seed-{path.parent.name}-{path.stem}-cut", b"\x05\x04" + walk[: 136 * 3 + 50])
    seed("socket_iter", f"seed-{path.parent.name}-{path.stem}-one", b"\xff\x01" + walk[136 * 5 : 136 * 6])
    seed("socket_iter", f"seed-{path.parent.name}-{path.stem}-footer", b"\x00\x00" + walk[-136:])

# --- write ---------------------------------------------------------------------

total = 0
for harness, files in sorted(seeds.items()):
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for name, data in files.items():
        (d / name).write_bytes(data)
        total += len(data)
    print(f"{harness:18} {len(files):3} seeds")
print(f"{total} bytes of seeds")
