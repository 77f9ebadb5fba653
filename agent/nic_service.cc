#include "agent/nic_service.h"

#include <re2/re2.h>

#include "absl/strings/str_format.h"
#include "agent/convert.h"
#include "collectors/counters.h"
#include "collectors/ethtool.h"
#include "collectors/nic_queues.h"
#include "kernel/netns.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

void SetStatus(const absl::Status& st, v1::Capability* out) {
  out->set_available(st.ok());
  if (!st.ok()) out->set_reason(std::string(st.message()));
}

std::string XdpMode(uint8_t attached) {
  switch (attached) {
    case 0:
      return "none";
    case 1:
      return "driver";
    case 2:
      return "generic";
    case 3:
      return "offload";
    default:
      return "multiple";
  }
}

std::string HexKey(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    absl::StrAppendFormat(&out, "%s%02x", i ? ":" : "", static_cast<uint8_t>(key[i]));
  }
  return out;
}

}  // namespace

void ToProto(const collectors::LinkRecord& l, v1::Link* o) {
  o->set_ifindex(l.ifindex);
  o->set_name(l.name);
  o->set_kind(l.kind);
  for (const auto& f : collectors::LinkFlagNames(l.flags)) o->add_flags(f);
  o->set_operstate(collectors::OperStateName(l.operstate));
  o->set_mtu(l.mtu);
  o->set_qdisc(l.qdisc);
  o->set_txqlen(l.txqlen);
  o->set_num_tx_queues(l.num_tx_queues);
  o->set_num_rx_queues(l.num_rx_queues);
  o->set_address(l.address);
  o->set_link_ifindex(l.link);
  o->set_master_ifindex(l.master);
  for (int i = 0; i < l.stats_count; ++i) {
    (*o->mutable_stats())[collectors::kLinkStatNames[i]] = l.stats[i];
  }
  auto* x = o->mutable_xdp();
  x->set_mode(XdpMode(l.xdp.attached));
  x->set_prog_id(l.xdp.prog_id);
  x->set_driver_prog_id(l.xdp.driver_prog_id);
  x->set_generic_prog_id(l.xdp.generic_prog_id);
  x->set_offload_prog_id(l.xdp.offload_prog_id);
}

grpc::Status NicService::ListNics(grpc::ServerContext* context, const v1::ListNicsRequest* request,
                                  v1::ListNicsResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto links = collectors::DumpLinks();
  if (!links.ok()) return ToGrpc(links.status());
  for (const auto& l : *links) ToProto(l, response->add_links());
  return grpc::Status::OK;
}

grpc::Status NicService::GetNic(grpc::ServerContext* context, const v1::GetNicRequest* request,
                                v1::GetNicResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  if (absl::Status st = collectors::ValidateInterfaceName(request->name(), "name"); !st.ok()) {
    return ToGrpc(st);
  }
  auto include =
      collectors::CompileNameFilter(request->driver_stats_include(), "driver_stats_include");
  if (!include.ok()) return ToGrpc(include.status());
  auto exclude =
      collectors::CompileNameFilter(request->driver_stats_exclude(), "driver_stats_exclude");
  if (!exclude.ok()) return ToGrpc(exclude.status());
  auto link = collectors::GetLink(request->name());
  if (!link.ok()) return ToGrpc(link.status());
  ToProto(*link, response->mutable_link());
  const std::string& dev = link->name;

  auto info = collectors::GetDriverInfo(dev);
  auto* d = response->mutable_driver();
  SetStatus(info.status(), d->mutable_status());
  if (info.ok()) {
    d->set_driver(info->driver);
    d->set_version(info->version);
    d->set_firmware(info->firmware);
    d->set_bus_info(info->bus_info);
  }

  auto ethtool = collectors::EthtoolClient::Open();
  auto section = [&](auto get) {
    using S = decltype(get(*ethtool));
    if (!ethtool.ok()) return S{ethtool.status(), {}};
    return get(*ethtool);
  };
  auto modes = section([&](auto& e) { return e.GetLinkModes(dev); });
  SetStatus(modes.status, response->mutable_link_modes()->mutable_status());
  if (modes.ok()) {
    auto* m = response->mutable_link_modes();
    if (modes.value.speed_mbps) m->set_speed_mbps(*modes.value.speed_mbps);
    m->set_duplex(modes.value.duplex);
    m->set_autoneg(modes.value.autoneg);
    if (modes.value.link_detected) m->set_link_detected(*modes.value.link_detected);
  }
  auto channels = section([&](auto& e) { return e.GetChannels(dev); });
  auto* c = response->mutable_channels();
  SetStatus(channels.status, c->mutable_status());
  if (channels.ok()) {
    const auto& v = channels.value;
    if (v.rx_max) c->set_rx_max(*v.rx_max);
    if (v.tx_max) c->set_tx_max(*v.tx_max);
    if (v.other_max) c->set_other_max(*v.other_max);
    if (v.combined_max) c->set_combined_max(*v.combined_max);
    if (v.rx) c->set_rx(*v.rx);
    if (v.tx) c->set_tx(*v.tx);
    if (v.other) c->set_other(*v.other);
    if (v.combined) c->set_combined(*v.combined);
  }
  auto rings = section([&](auto& e) { return e.GetRings(dev); });
  SetStatus(rings.status, response->mutable_rings()->mutable_status());
  ToProto(rings.value, response->mutable_rings()->mutable_values());
  auto coalesce = section([&](auto& e) { return e.GetCoalesce(dev); });
  SetStatus(coalesce.status, response->mutable_coalesce()->mutable_status());
  ToProto(coalesce.value, response->mutable_coalesce()->mutable_values());
  auto features = section([&](auto& e) { return e.GetFeatures(dev); });
  SetStatus(features.status, response->mutable_features()->mutable_status());
  for (const auto& f : features.value) {
    auto* o = response->mutable_features()->add_features();
    o->set_name(f.name);
    o->set_active(f.active);
    o->set_wanted(f.wanted);
    o->set_fixed(f.fixed);
  }
  auto pause = section([&](auto& e) { return e.GetPause(dev); });
  SetStatus(pause.status, response->mutable_pause()->mutable_status());
  response->mutable_pause()->set_autoneg(pause.value.autoneg);
  response->mutable_pause()->set_rx(pause.value.rx);
  response->mutable_pause()->set_tx(pause.value.tx);
  auto stats = section([&](auto& e) { return e.GetStandardStats(dev); });
  SetStatus(stats.status, response->mutable_standard_stats()->mutable_status());
  for (const auto& g : stats.value) {
    auto* o = response->mutable_standard_stats()->add_groups();
    o->set_name(g.name);
    ToProto(g.stats, o->mutable_stats());
  }
  auto rss = section([&](auto& e) { return e.GetRss(dev); });
  SetStatus(rss.status, response->mutable_rss()->mutable_status());
  if (rss.ok()) {
    response->mutable_rss()->set_hash_function(rss.value.hash_function);
    for (uint32_t q : rss.value.indirection) response->mutable_rss()->add_indirection(q);
    response->mutable_rss()->set_hash_key(HexKey(rss.value.hash_key));
  }

  auto driver_stats = collectors::GetDriverStats(dev);
  auto* ds = response->mutable_driver_stats();
  SetStatus(driver_stats.status(), ds->mutable_status());
  if (driver_stats.ok()) {
    ds->set_total(static_cast<uint32_t>(driver_stats->size()));
    for (const auto& [name, value] : *driver_stats) {
      if (*include && !RE2::PartialMatch(name, **include)) continue;
      if (*exclude && RE2::PartialMatch(name, **exclude)) continue;
      auto* v = ds->add_counters();
      v->set_name(name);
      v->set_value(value);
    }
  }

  auto qstats = collectors::GetQueueStats(link->ifindex);
  SetStatus(qstats.status(), response->mutable_queue_stats()->mutable_status());
  if (qstats.ok()) {
    for (const auto& q : *qstats) {
      auto* o = response->mutable_queue_stats()->add_queues();
      o->set_type(q.type);
      o->set_id(q.id);
      ToProto(q.values, o->mutable_values());
    }
  }
  auto queues = collectors::ReadQueueConfig(dev, kernel::NetSysfsRoot());
  SetStatus(queues.status(), response->mutable_queues()->mutable_status());
  if (queues.ok()) {
    for (const auto& q : queues->rx) {
      auto* o = response->mutable_queues()->add_rx();
      o->set_id(q.id);
      o->set_rps_cpus(q.rps_cpus);
      if (q.rps_flow_cnt) o->set_rps_flow_cnt(*q.rps_flow_cnt);
    }
    for (const auto& q : queues->tx) {
      auto* o = response->mutable_queues()->add_tx();
      o->set_id(q.id);
      o->set_xps_cpus(q.xps_cpus);
      o->set_xps_rxqs(q.xps_rxqs);
      if (q.tx_maxrate) o->set_tx_maxrate(*q.tx_maxrate);
    }
  }
  auto irqs = collectors::ReadDeviceIrqs(dev, kernel::NetSysfsRoot());
  SetStatus(irqs.status(), response->mutable_irqs()->mutable_status());
  if (irqs.ok()) {
    for (const auto& i : *irqs) {
      auto* o = response->mutable_irqs()->add_irqs();
      o->set_irq(i.irq);
      o->set_name(i.name);
      o->set_count(i.count);
      o->set_affinity_list(i.affinity_list);
      o->set_effective_affinity_list(i.effective_affinity_list);
    }
  }
  return grpc::Status::OK;
}

}  // namespace netagent::agent
