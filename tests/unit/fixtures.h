// Reading files under tests/fixtures from unit tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace netagent::testing {

inline std::string FixturePath(const std::string& rel) {
  return std::string(NETAGENT_FIXTURES) + "/" + rel;
}

inline std::string Fixture(const std::string& rel) {
  std::ifstream in(FixturePath(rel), std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << rel;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool FixtureExists(const std::string& rel) { return std::ifstream(FixturePath(rel)).good(); }

}  // namespace netagent::testing
