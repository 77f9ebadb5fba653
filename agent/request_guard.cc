#include "agent/request_guard.h"

#include <google/protobuf/stubs/common.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpcpp/impl/rpc_service_method.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::agent {
namespace {

namespace pb = ::google::protobuf;

// Requests nest a few levels; this only bounds a hostile message.
constexpr int kMaxDepth = 32;

absl::Status Bad(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
}

// Depth first, in wire order: the path of the first string field of `type`
// in `set` that is not valid UTF-8, or "".
std::string FindInvalidUtf8(const pb::UnknownFieldSet& set, const pb::Descriptor& type,
                            const std::string& prefix, int depth) {
  std::map<int, int> seen;  // occurrences per field number: the index of a repeated one
  for (int i = 0; i < set.field_count(); ++i) {
    const pb::UnknownField& u = set.field(i);
    const pb::FieldDescriptor* f = type.FindFieldByNumber(u.number());
    if (f == nullptr) continue;
    const int index = seen[u.number()]++;
    if (u.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const std::string path =
        f->is_repeated() ? absl::StrCat(prefix, f->name(), "[", index, "]") : prefix + f->name();
    if (f->type() == pb::FieldDescriptor::TYPE_STRING) {
      if (!pb::internal::IsStructurallyValidUTF8(u.length_delimited())) return path;
    } else if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE && depth < kMaxDepth) {
      pb::UnknownFieldSet sub;
      if (!sub.ParseFromString(u.length_delimited())) continue;
      std::string found = FindInvalidUtf8(sub, *f->message_type(), path + ".", depth + 1);
      if (!found.empty()) return found;
    }
  }
  return "";
}

absl::Status CheckFields(const pb::Message& m, const std::string& prefix, int depth) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const bool repeated = f->is_repeated();
    const int n = repeated ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string path =
          repeated ? absl::StrCat(prefix, f->name(), "[", i, "]") : prefix + f->name();
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_ENUM: {
          const int v = repeated ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
          if (f->enum_type()->FindValueByNumber(v) == nullptr) {
            return Bad(path,
                       absl::StrCat("unknown value ", v, " of ", f->enum_type()->full_name()));
          }
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_STRING: {
          if (f->type() != pb::FieldDescriptor::TYPE_STRING) break;  // bytes are data
          std::string scratch;
          const std::string& s = repeated ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                          : r->GetStringReference(m, f, &scratch);
          // Tab is allowed: a sysctl vector read back from /proc has tabs.
          if (std::string why = kernel::FindUnprintable(s, /*allow_tab=*/true); !why.empty()) {
            return Bad(path, why);
          }
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
          if (depth >= kMaxDepth) break;
          const pb::Message& sub = repeated ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f);
          NETAGENT_RETURN_IF_ERROR(CheckFields(sub, path + ".", depth + 1));
          break;
        }
        default:
          break;
      }
    }
  }
  return absl::OkStatus();
}

std::string ReadAll(grpc_byte_buffer* buffer) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, buffer)) return "";
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
  std::string out(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(all)), GRPC_SLICE_LENGTH(all));
  grpc_slice_unref(all);
  grpc_byte_buffer_reader_destroy(&reader);
  return out;
}

// Runs the service's own handler, and the checks around its deserialization.
class GuardedHandler : public grpc::internal::MethodHandler {
 public:
  GuardedHandler(grpc::internal::MethodHandler* inner, const pb::Descriptor* type)
      : inner_(inner), type_(type) {}

  void RunHandler(const HandlerParameter& param) override { inner_->RunHandler(param); }

  void* Deserialize(grpc_call* call, grpc_byte_buffer* req, grpc::Status* status,
                    void** handler_data) override {
    // The inner handler consumes `req`; a second reference to the same slices
    // keeps the bytes for the explanation (no copy of the data).
    grpc_byte_buffer* kept = req != nullptr ? grpc_byte_buffer_copy(req) : nullptr;
    void* request = inner_->Deserialize(call, req, status, handler_data);
    absl::Status verdict;
    if (!status->ok()) {
      verdict = kept != nullptr ? ExplainUnparsable(ReadAll(kept), *type_)
                                : absl::InvalidArgumentError("request: missing");
    } else {
      // Unary handlers hand back the request as MessageLite*, server-streaming
      // ones as the generated type; generated messages derive from
      // MessageLite alone, at offset 0, so either reads as a MessageLite
      // (request_guard_test checks every request type).
      auto* lite = static_cast<pb::MessageLite*>(request);
      verdict = CheckRequestFields(*static_cast<pb::Message*>(lite));
      if (!verdict.ok()) {
        lite->~MessageLite();  // in the call's arena, as the handler would
        request = nullptr;
      }
    }
    if (kept != nullptr) grpc_byte_buffer_destroy(kept);
    if (!verdict.ok()) {
      *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(verdict.message()));
    }
    return request;
  }

 private:
  grpc::internal::MethodHandler* inner_;  // owned by the inner service, or the guard (an override)
  const pb::Descriptor* type_;
};

// grpc::Service keeps GetHandler protected; a derived class may name it.
struct HandlerAccess : grpc::Service {
  static grpc::internal::MethodHandler* Of(grpc::Service* service, int index) {
    return (service->*&HandlerAccess::GetHandler)(index);
  }
};

}  // namespace

absl::Status ExplainUnparsable(absl::string_view bytes, const pb::Descriptor& type) {
  pb::UnknownFieldSet set;
  if (set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    const std::string path = FindInvalidUtf8(set, type, "", 0);
    if (!path.empty()) return Bad(path, "not valid UTF-8");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("request: not a valid ", type.full_name(), " (malformed protobuf)"));
}

absl::Status CheckRequestFields(const pb::Message& request) { return CheckFields(request, "", 0); }

absl::StatusOr<std::unique_ptr<GuardedService>> GuardedService::Wrap(grpc::Service* inner,
                                                                     absl::string_view service_name,
                                                                     HandlerOverrides overrides) {
  const pb::ServiceDescriptor* sd =
      pb::DescriptorPool::generated_pool()->FindServiceByName(std::string(service_name));
  if (sd == nullptr) {
    return absl::InternalError(absl::StrCat("no descriptor for service ", service_name));
  }
  std::unique_ptr<GuardedService> guard(new GuardedService());
  // Generated services add their methods in descriptor order.
  for (int i = 0; i < sd->method_count(); ++i) {
    const pb::MethodDescriptor* m = sd->method(i);
    if (m->client_streaming()) {
      return absl::InternalError(absl::StrCat(m->full_name(),
                                              ": client-streaming requests would bypass the "
                                              "request guard (agent/request_guard.h)"));
    }
    grpc::internal::MethodHandler* handler = HandlerAccess::Of(inner, i);
    if (auto it = overrides.find(m->name()); it != overrides.end()) {
      handler = it->second.get();
      guard->overrides_.push_back(std::move(it->second));
      overrides.erase(it);
    }
    guard->method_paths_.push_back(absl::StrCat("/", sd->full_name(), "/", m->name()));
    guard->AddMethod(new grpc::internal::RpcServiceMethod(
        guard->method_paths_.back().c_str(),
        m->server_streaming() ? grpc::internal::RpcMethod::SERVER_STREAMING
                              : grpc::internal::RpcMethod::NORMAL_RPC,
        new GuardedHandler(handler, m->input_type())));
  }
  if (!overrides.empty()) {
    return absl::InternalError(
        absl::StrCat(service_name, " has no method ", overrides.begin()->first, " to override"));
  }
  return guard;
}

}  // namespace netagent::agent
