#include "agent/host_service.h"

#include <algorithm>
#include <iterator>

#include "agent/convert.h"
#include "agent/logging.h"
#include "collectors/host.h"
#include "kernel/cpus.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

void CapabilityToProto(const kernel::Capability& c, v1::Capability* out) {
  out->set_available(c.available);
  out->set_reason(c.reason);
  out->set_note(c.note);
}

void GenlToProto(const GenlCapability& g, v1::GenlFamilyCapability* out) {
  CapabilityToProto(g.status, out->mutable_status());
  out->set_family_id(g.family_id);
  out->set_version(g.version);
  for (const auto& op : g.ops) out->add_ops(op);
}

constexpr std::pair<v1::LogLevel, spdlog::level::level_enum> kLevels[] = {
    {v1::LOG_LEVEL_TRACE, spdlog::level::trace}, {v1::LOG_LEVEL_DEBUG, spdlog::level::debug},
    {v1::LOG_LEVEL_INFO, spdlog::level::info},   {v1::LOG_LEVEL_WARN, spdlog::level::warn},
    {v1::LOG_LEVEL_ERROR, spdlog::level::err},
};

v1::LogLevel LevelToProto(spdlog::level::level_enum l) {
  for (const auto& [proto, level] : kLevels) {
    if (level == l) return proto;
  }
  return v1::LOG_LEVEL_ERROR;  // critical and off
}

}  // namespace

grpc::Status HostService::GetHostInfo(grpc::ServerContext* context,
                                      const v1::GetHostInfoRequest* request,
                                      v1::GetHostInfoResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  collectors::HostIdentity id = collectors::ReadHostIdentity();
  response->set_hostname(id.hostname);
  response->set_kernel_release(id.kernel_release);
  response->set_kernel_version(id.kernel_version);
  response->set_machine(id.machine);
  response->set_agent_version(ctx_.version);
  ToProto(ctx_.started_at, response->mutable_agent_started_at());

  auto topo = kernel::ReadCpuTopology();
  if (!topo.ok()) return ToGrpc(topo.status());
  v1::Cpus* cpus = response->mutable_cpus();
  cpus->set_online_list(topo->online_list);
  cpus->set_possible_list(topo->possible_list);
  cpus->set_numa_nodes(topo->numa_nodes);
  for (const auto& c : topo->online) {
    v1::Cpu* cpu = cpus->add_online();
    cpu->set_id(c.id);
    cpu->set_numa_node(c.numa_node);
  }

  v1::NetworkNamespace* ns = response->mutable_network_namespace();
  ns->set_inode(ctx_.netns.inode);
  ns->set_name(ctx_.netns.name);
  ns->set_path(ctx_.netns.path);
  ns->set_initial(ctx_.netns.initial);

  const Capabilities& caps = ctx_.capabilities;
  v1::Capabilities* out = response->mutable_capabilities();
  GenlToProto(caps.ethtool_netlink, out->mutable_ethtool_netlink());
  GenlToProto(caps.netdev_netlink, out->mutable_netdev_netlink());
  CapabilityToProto(caps.btf, out->mutable_btf());
  CapabilityToProto(caps.bpffs, out->mutable_bpffs());
  CapabilityToProto(caps.drop_reasons, out->mutable_drop_reasons());
  if (ctx_.socket_iter) {
    CapabilityToProto(ctx_.socket_iter->capability(), out->mutable_socket_iterator());
  }
  CapabilityToProto(caps.xdp.generic, out->mutable_xdp()->mutable_generic());
  CapabilityToProto(caps.xdp.native, out->mutable_xdp()->mutable_native());
  for (const auto& i : caps.xdp.native_interfaces) out->mutable_xdp()->add_native_interfaces(i);
  CapabilityToProto(caps.conntrack_netlink, out->mutable_conntrack_netlink());
  auto* cc = out->mutable_congestion_control();
  for (const auto& a : caps.cc_available) cc->add_available(a);
  for (const auto& a : caps.cc_allowed) cc->add_allowed(a);
  cc->set_current(caps.cc_current);
  for (const tuners::TreeAccess& t : caps.writable_trees) {
    v1::WritableTree* w = out->add_writable_trees();
    w->set_name(t.name);
    w->set_path(t.path);
    w->set_knobs(static_cast<uint32_t>(t.knobs));
    w->set_writable_knobs(static_cast<uint32_t>(t.writable_knobs));
    w->set_writable(t.writable);
    w->set_reason(t.reason);
  }
  ToProto(caps.probed_at, out->mutable_probed_at());

  if (auto call = ctx_.auth->FindCall(context)) {
    ToProto(call->caller, call->decision, response->mutable_caller());
  }
  for (const Condition& c : ctx_.conditions.List()) {
    v1::AgentCondition* m = response->add_conditions();
    m->set_id(c.id);
    m->set_severity(static_cast<v1::Severity>(c.severity));
    m->set_summary(c.summary);
    m->set_action(c.action);
    ToProto(c.since, m->mutable_since());
  }
  return grpc::Status::OK;
}

grpc::Status HostService::SetLogLevel(grpc::ServerContext* context,
                                      const v1::SetLogLevelRequest* request,
                                      v1::SetLogLevelResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  const auto* found = std::find_if(std::begin(kLevels), std::end(kLevels),
                                   [&](const auto& l) { return l.first == request->level(); });
  if (found == std::end(kLevels)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "level: one of trace, debug, info, warn, error");
  }
  const spdlog::level::level_enum level = found->second;
  response->set_previous(LevelToProto(spdlog::default_logger()->level()));
  spdlog::default_logger()->set_level(level);
  response->set_current(LevelToProto(level));
  spdlog::warn("log level set to {}", spdlog::level::to_string_view(level));
  return grpc::Status::OK;
}

}  // namespace netagent::agent
