// Reading netctl's JSON lines in tests.
#pragma once

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace netagent::testing {

inline google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(line, &s);
  EXPECT_TRUE(st.ok()) << st << ": " << line;
  return s;
}

inline std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The "result" of one netctl -o json line, as message T.
template <typename T>
T ResultOf(const std::string& line) {
  google::protobuf::Struct s = ParseJson(line);
  T out;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(s.fields().at("result"), &json);
  auto st = google::protobuf::util::JsonStringToMessage(json, &out);
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// A line that is message T itself (netctl playbook's events and summaries).
template <typename T>
T MessageOf(const std::string& line) {
  T out;
  auto st = google::protobuf::util::JsonStringToMessage(line, &out);
  EXPECT_TRUE(st.ok()) << st << ": " << line;
  return out;
}

}  // namespace netagent::testing
