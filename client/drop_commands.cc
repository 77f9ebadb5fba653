// netctl drops: the kernel's drops by reason, device and protocol, largest
// first, then where the sampled drops came from and the newest samples.
#include <grpcpp/client_context.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/telemetry.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

std::string Device(const std::string& name, uint32_t ifindex) {
  if (!name.empty()) return name;
  return ifindex == 0 ? "-" : absl::StrCat("if", ifindex);
}

std::string Endpoint(const std::string& addr, bool has_port, uint32_t port) {
  if (addr.empty()) return "-";
  if (!has_port) return addr;
  return addr.find(':') != std::string::npos ? absl::StrCat("[", addr, "]:", port)
                                             : absl::StrCat(addr, ":", port);
}

std::string ClockTime(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%H:%M:%E3S",
                          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
                          absl::UTCTimeZone());
}

void DropsBlock(const v1::GetDropReasonsResponse& r, std::ostream& out) {
  const auto& c = r.collector();
  const bool windowed = r.has_window();
  if (windowed) {
    const double secs = r.window().seconds() + r.window().nanos() / 1e9;
    out << "dropped " << r.total_delta() << " in " << absl::StrFormat("%.1fs", secs) << " ("
        << Rate(secs > 0 ? r.total_delta() / secs : 0) << "/s); " << r.total() << " since "
        << Time(c.attached_at()) << "\n";
  } else {
    out << "dropped " << r.total() << " since " << Time(c.attached_at()) << "\n";
  }
  if (c.attached_now() && !windowed) {
    out << "note: the collector was attached by this call, so counting starts now: ask again, "
           "or use --window\n";
  }
  if (c.no_room() > 0) {
    out << "warning: " << c.no_room() << " drops of keys the collector had no room for\n";
  }
  if (c.unattributed() > 0) {
    out << "note: " << c.unattributed()
        << " drops with no device and no socket (namespace unknown) not counted\n";
  }
  out << "\n";
  Table t(windowed
              ? std::vector<std::string>{"REASON", "DEVICE", "PROTOCOL", "COUNT", "DELTA", "RATE/s"}
              : std::vector<std::string>{"REASON", "DEVICE", "PROTOCOL", "COUNT"});
  for (const auto& row : r.rows()) {
    if (windowed) {
      t.AddRow({row.reason(), Device(row.device(), row.ifindex()), row.protocol(), Num(row.count()),
                row.has_delta() ? Num(row.delta()) : "-", row.has_rate() ? Rate(row.rate()) : "-"});
    } else {
      t.AddRow(
          {row.reason(), Device(row.device(), row.ifindex()), row.protocol(), Num(row.count())});
    }
  }
  t.Render(out);
  if (r.top_sources_size() > 0) {
    out << "\n";
    Table top({"TOP-SOURCE", "SAMPLES", "MOSTLY"});
    for (const auto& s : r.top_sources())
      top.AddRow({s.prefix(), Num(s.samples()), s.top_reason()});
    top.Render(out);
  }
  if (r.samples_size() > 0) {
    out << "\n";
    Table samples({"TIME", "REASON", "DEVICE", "PROTOCOL", "SOURCE", "DESTINATION", "LENGTH"});
    for (const auto& s : r.samples()) {
      samples.AddRow({ClockTime(s.time()), s.reason(), Device(s.device(), s.ifindex()),
                      s.protocol(), Endpoint(s.source(), s.has_source_port(), s.source_port()),
                      Endpoint(s.destination(), s.has_destination_port(), s.destination_port()),
                      Num(s.length())});
    }
    samples.Render(out);
  }
  out << "\n"
      << "samples " << c.samples_taken() << " taken, " << c.samples_capped() << " over the cap of "
      << c.samples_per_second() << "/s per CPU, " << c.samples_lost() << " lost; "
      << c.reasons_known() << " reasons on this kernel" << (c.compat() ? " (compat program)" : "")
      << "\n";
}

}  // namespace

int RunDrops(const CommandContext& c, const DropsArgs& args) {
  v1::GetDropReasonsRequest req;
  if (args.window) SetDuration(*args.window, req.mutable_window());
  for (const auto& r : args.reasons) req.add_reasons(r);
  for (const auto& d : args.devices) req.add_devices(d);
  if (args.samples) req.set_max_samples(*args.samples);
  View view;
  view.block = TypedBlock<v1::GetDropReasonsResponse>(DropsBlock);
  return RunUnary(
      c, view,
      [&](const Target&, grpc::Channel& ch, absl::Time d) {
        return Unary(ch, d, req, &v1::TelemetryService::Stub::GetDropReasons);
      },
      args.window.value_or(absl::ZeroDuration()));
}

void AddDropCommands(Commands& commands) {
  auto window = std::make_shared<std::string>();
  auto args = std::make_shared<DropsArgs>();
  auto* drops = commands.app().add_subcommand(
      "drops", "packets the kernel dropped, by drop reason, device and protocol (5.17+)");
  drops->add_option("--window", *window, "read twice this far apart: deltas and rates");
  drops
      ->add_option("--reason", args->reasons,
                   "only this reason (NO_SOCKET, TCP_LISTEN_OVERFLOW, ...; repeatable)")
      ->delimiter(',');
  drops->add_option("--dev", args->devices, "only this device (repeatable)")->delimiter(',');
  drops->add_option("--samples", args->samples,
                    "flow samples to show, newest first (default 20, at most 256, 0: none)");
  commands.Runs(drops, [window, args](CommandContext& c) {
    auto w = ParseDurationFlag(*window, "--window");
    if (!w.ok()) return UsageError(c, std::string(w.status().message()));
    args->window = *w;
    return RunDrops(c, *args);
  });
}

}  // namespace netagent::client
