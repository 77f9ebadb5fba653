// netctl's one output layer. Table mode is for people: aligned columns, a
// TARGET column when there is more than one target, a failed target shown as
// a note in its place. JSON mode is for machines: one object per target and
// line, {"target","ok","error","result"}, the result in protobuf's JSON mapping.
//
// Everything shown in table mode comes from agents or from whoever wrote a
// targets file: table cells, notes, blocks and error messages pass through
// TerminalText here, and the commands that print streams line by line
// themselves (watch, datapath samples, conntrack list) do the same per line,
// so no text can move the cursor, clear a line or reorder one.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/fanout.h"
#include "client/targets.h"

namespace netagent::client {

enum class Format { kTable, kJson };

// `text` with what a terminal would obey instead of show made visible: C0
// controls (\n, \r, \t by name, others \xNN), DEL, bytes that are not UTF-8
// (\xNN), C1 controls and the bidi and line-separator controls (\uNNNN).
// `keep_newlines` leaves line breaks alone (a block of several lines).
std::string TerminalText(absl::string_view text, bool keep_newlines = false);

// Cells and notes are shown through TerminalText.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> cells);
  // A line that starts with `lead` cells and then free text, not widening columns.
  void AddNote(std::vector<std::string> lead, std::string text);
  void Render(std::ostream& out) const;
  bool empty() const { return rows_.empty(); }

 private:
  struct Row {
    std::vector<std::string> cells;
    std::string note;
    bool is_note = false;
  };
  std::vector<std::string> header_;
  std::vector<Row> rows_;
};

// How a command shows one target's result in table mode: rows of a shared
// table, or a block of text.
struct View {
  std::vector<std::string> header;
  std::function<void(const google::protobuf::Message&, std::vector<std::vector<std::string>>&)>
      rows;
  std::function<void(const google::protobuf::Message&, std::ostream&)> block;
};

std::string StatusCodeName(absl::StatusCode code);
// "CODE: message", the message through TerminalText.
std::string DescribeError(const absl::Status& status);

std::string JsonLine(const Target& target, const absl::Status& status,
                     const google::protobuf::Message* result);

// Prints every target's outcome; returns 0 when all succeeded, 1 otherwise.
// `label_targets` adds the TARGET column (always with several targets; also
// for one that came from --dns or a targets file, so the reader sees which).
int PrintOutcomes(const std::vector<Target>& targets, const std::vector<Outcome>& outcomes,
                  Format format, const View& view, bool label_targets, std::ostream& out,
                  std::ostream& err);

// Formatting helpers shared by the views.
std::string Num(uint64_t v);
std::string SignedNum(int64_t v);
std::string Rate(double per_second);
// An enum value's name without its prefix ("TRANSPORT_UNIX", "TRANSPORT_":
// "UNIX"), or its number when netctl does not know the value (a newer
// agent's: its name is empty).
std::string EnumSuffix(const std::string& name, absl::string_view prefix, int number);

}  // namespace netagent::client
