#include "agent/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/fixtures.h"

namespace netagent::agent {
namespace {

using netagent::testing::Fixture;
using netagent::testing::FixturePath;

TEST(ValidateTlsMaterial, MatchingPair) {
  EXPECT_TRUE(ValidateTlsMaterial(Fixture("tls/server.pem"), Fixture("tls/server.key"),
                                  Fixture("tls/ca.pem"))
                  .ok());
  EXPECT_TRUE(ValidateTlsMaterial(Fixture("tls/server.pem"), Fixture("tls/server.key"), "").ok());
}

TEST(ValidateTlsMaterial, MismatchAndGarbageNameTheFile) {
  absl::Status st = ValidateTlsMaterial(Fixture("tls/server.pem"), Fixture("tls/other.key"),
                                        Fixture("tls/ca.pem"));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message().rfind("tls_key:", 0), 0u) << st;
  EXPECT_EQ(ValidateTlsMaterial("junk", Fixture("tls/server.key"), "").message().substr(0, 9),
            "tls_cert:");
  EXPECT_EQ(ValidateTlsMaterial(Fixture("tls/server.pem"), "junk", "").message().substr(0, 8),
            "tls_key:");
  EXPECT_EQ(ValidateTlsMaterial(Fixture("tls/server.pem"), Fixture("tls/server.key"), "junk")
                .message()
                .substr(0, 14),
            "tls_client_ca:");
}

class TlsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("netagent-tls-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "src");
    std::filesystem::copy_file(FixturePath("tls/server.pem"), dir_ / "src/cert.pem");
    std::filesystem::copy_file(FixturePath("tls/server.key"), dir_ / "src/key.pem");
    std::filesystem::copy_file(FixturePath("tls/ca.pem"), dir_ / "src/ca.pem");
    paths_ = {(dir_ / "src/cert.pem").string(), (dir_ / "src/key.pem").string(),
              (dir_ / "src/ca.pem").string()};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Current() const {
    return std::filesystem::read_symlink(dir_ / "state/current").string();
  }

  std::filesystem::path dir_;
  TlsPaths paths_;
};

TEST_F(TlsStoreTest, StagesAValidatedCopyAndSwapsItOnReload) {
  auto store = TlsStore::Create(paths_, (dir_ / "state").string());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(Current(), "gen-1");
  EXPECT_TRUE(std::filesystem::exists(dir_ / "state/current/key.pem"));
  EXPECT_EQ((std::filesystem::status(dir_ / "state/gen-1/key.pem").permissions() &
             std::filesystem::perms::others_read),
            std::filesystem::perms::none);
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_EQ(Current(), "gen-2");
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_EQ(Current(), "gen-3");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state/gen-1"));  // two back is removed
  EXPECT_NE((*store)->Credentials(), nullptr);
}

TEST_F(TlsStoreTest, ABadReloadKeepsTheRunningCertificates) {
  auto store = TlsStore::Create(paths_, (dir_ / "state").string());
  ASSERT_TRUE(store.ok());
  std::filesystem::copy_file(FixturePath("tls/other.key"), dir_ / "src/key.pem",
                             std::filesystem::copy_options::overwrite_existing);
  absl::Status st = (*store)->Reload();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_EQ(Current(), "gen-1");
}

TEST_F(TlsStoreTest, MissingFilesFailCreate) {
  paths_.key = (dir_ / "src/none.pem").string();
  EXPECT_FALSE(TlsStore::Create(paths_, (dir_ / "state").string()).ok());
}

}  // namespace
}  // namespace netagent::agent
