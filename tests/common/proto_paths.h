// Requests built from descriptors: every string and enum field a request
// type can hold, and a request with just one of them set to a chosen value.
// Sweeps over every method use these, so a field added later is covered.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace netagent::testing {

// A path from a request type to one of its fields.
struct FieldPath {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  std::string text;  // "edits[0].add.comment"
  const google::protobuf::FieldDescriptor* leaf() const { return fields.back(); }
};

namespace internal {

inline void CollectPaths(const google::protobuf::Descriptor* type,
                         std::vector<const google::protobuf::FieldDescriptor*>& stack,
                         std::set<const google::protobuf::Descriptor*>& on_path,
                         const std::string& prefix, std::vector<FieldPath>& out) {
  using google::protobuf::FieldDescriptor;
  if (!on_path.insert(type).second || stack.size() > 8) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    const std::string name = prefix + f->name() + (f->is_repeated() ? "[0]" : "");
    stack.push_back(f);
    if (f->type() == FieldDescriptor::TYPE_STRING || f->type() == FieldDescriptor::TYPE_ENUM) {
      out.push_back({stack, name});
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE &&
               f->message_type()->file()->package() == type->file()->package()) {
      // Map entries too: "intent.coalesce.values[0].key".
      CollectPaths(f->message_type(), stack, on_path, name + ".", out);
    }
    stack.pop_back();
  }
  on_path.erase(type);
}

}  // namespace internal

// Every string and enum field of `type` and of the messages of its own
// package it holds, depth first; repeated fields as their element [0].
inline std::vector<FieldPath> StringAndEnumPaths(const google::protobuf::Descriptor* type) {
  std::vector<FieldPath> out;
  std::vector<const google::protobuf::FieldDescriptor*> stack;
  std::set<const google::protobuf::Descriptor*> on_path;
  internal::CollectPaths(type, stack, on_path, "", out);
  return out;
}

// The bytes of a `type` with only the field at `path` set: a string to
// `text`, an enum to the raw `number` (proto3 keeps values it does not know).
inline std::string RequestWith(const google::protobuf::Descriptor* type, const FieldPath& path,
                               const std::string& text, int number) {
  using google::protobuf::FieldDescriptor;
  std::unique_ptr<google::protobuf::Message> root(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  google::protobuf::Message* m = root.get();
  for (size_t i = 0; i + 1 < path.fields.size(); ++i) {
    const FieldDescriptor* f = path.fields[i];
    m = f->is_repeated() ? m->GetReflection()->AddMessage(m, f)
                         : m->GetReflection()->MutableMessage(m, f);
  }
  const FieldDescriptor* f = path.leaf();
  const google::protobuf::Reflection* r = m->GetReflection();
  if (f->type() == FieldDescriptor::TYPE_STRING) {
    if (f->is_repeated()) {
      r->AddString(m, f, text);
    } else {
      r->SetString(m, f, text);
    }
  } else if (f->is_repeated()) {
    r->AddEnumValue(m, f, number);
  } else {
    r->SetEnumValue(m, f, number);
  }
  google::protobuf::LogSilencer quiet;  // serializing text that is not UTF-8 logs
  return root->SerializeAsString();
}

}  // namespace netagent::testing
