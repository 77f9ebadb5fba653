// netctl's one output layer (the Printer below). Table mode is for people:
// aligned columns, a TARGET column when there is more than one target. JSON
// mode is for machines: one object per target (or streamed part) and line.
//
// Everything shown in table mode comes from agents or from whoever wrote a
// targets file: table cells, notes, blocks, stream lines and error messages
// pass through TerminalText here, so no text can move the cursor, clear a
// line or reorder one.
#pragma once

#include <google/protobuf/arena.h>
#include <google/protobuf/message.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/fanout.h"
#include "client/targets.h"

namespace netagent::client {

enum class Format { kTable, kJson };

// `text` with what a terminal would obey instead of show made visible: C0
// controls (\n, \r, \t by name, others \xNN), DEL, bytes that are not UTF-8
// (\xNN), C1 controls and the bidi and line-separator controls (\uNNNN).
// `keep_newlines` leaves line breaks alone (a block of several lines).
std::string TerminalText(absl::string_view text, bool keep_newlines = false);
// Appends TerminalText(text) to *out, with no string of its own when the text
// is printable ASCII (the common case: a bulk stream's fields).
void AppendTerminalText(std::string* out, absl::string_view text);

// Cells and notes are shown through TerminalText. A table can be rendered
// all at once (widths from every row) or as rows arrive: the first
// RenderPending fixes the widths from the header and the rows so far (the
// "first page"), later rows are formatted with those widths as they are added
// (a wider cell pushes the rest of its line right, never truncated).
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  // Column `col` at least `width` wide (a TARGET column sized for every target).
  void SetMinWidth(size_t col, size_t width);
  void AddRow(std::vector<std::string> cells);
  // A line that starts with `lead` cells and then free text, not widening columns.
  void AddNote(std::vector<std::string> lead, std::string text);
  // Appends what is not rendered yet (the header and first page the first
  // time), fixing the widths.
  void RenderPending(std::string* out);
  void Render(std::ostream& out);
  bool empty() const { return rows_.empty() && !fixed_; }
  // Rows held before the widths are fixed.
  size_t held() const { return rows_.size(); }
  bool fixed() const { return fixed_; }

 private:
  struct Row {
    std::vector<std::string> cells;
    std::string note;
    bool is_note = false;
  };
  void Line(const std::vector<std::string>& cells, const std::string* note, std::string* out) const;
  std::vector<std::string> header_;
  std::vector<size_t> width_;
  std::vector<bool> right_;
  std::vector<Row> rows_;
  bool fixed_ = false;
  std::string ready_;  // rows formatted after the widths were fixed
};

using Rows = std::vector<std::vector<std::string>>;
using RowsFn = std::function<void(const google::protobuf::Message&, Rows&)>;
using BlockFn = std::function<void(const google::protobuf::Message&, std::ostream&)>;

// A message as the type a view shows; null when it is another (a netctl bug,
// which the view then says instead of reading the wrong type).
template <typename T>
const T* MessageAs(const google::protobuf::Message& m) {
  return m.GetDescriptor() == T::descriptor() ? static_cast<const T*>(&m) : nullptr;
}
std::string UnexpectedMessage(const google::protobuf::Message& m, absl::string_view expected);

// A view's rows or block over its command's own message type `T`:
// TypedRows<v1::GetSoftnetResponse>([](const v1::GetSoftnetResponse& r, Rows& rows) {...}).
template <typename T, typename F>
RowsFn TypedRows(F f) {
  return [f = std::move(f)](const google::protobuf::Message& m, Rows& rows) {
    if (const T* t = MessageAs<T>(m)) {
      f(*t, rows);
    } else {
      rows.push_back({UnexpectedMessage(m, T::descriptor()->full_name())});
    }
  };
}
template <typename T, typename F>
BlockFn TypedBlock(F f) {
  return [f = std::move(f)](const google::protobuf::Message& m, std::ostream& out) {
    if (const T* t = MessageAs<T>(m)) {
      f(*t, out);
    } else {
      out << UnexpectedMessage(m, T::descriptor()->full_name()) << "\n";
    }
  };
}

// How a command shows one target's result in table mode: rows of a shared
// table, or a block of text.
struct View {
  std::vector<std::string> header;
  RowsFn rows;
  BlockFn block;
  // Numeric commands: how a fleet's results are ranked (--top) and added up
  // (--sum). Rows in `header`'s columns (`rows`, or `numbers` for a block
  // view); `keys` are the columns that name a row (NAME, CPU, ...), `by` the
  // column ranked by default.
  RowsFn numbers;
  std::vector<std::string> numbers_header;
  std::vector<size_t> keys;
  std::string by;
};

// --top N [--by FIELD] and --sum over a fleet.
struct Aggregate {
  uint32_t top = 0;
  bool sum = false;
  std::string by;
  bool active() const { return top > 0 || sum; }
};

// The rows a fleet aggregate prints: per key (in first-seen order), the `top`
// targets with the highest `by` value (ties in target order), or one row of
// column sums with the number of targets in the TARGET column. `rows[i]`
// holds target i's rows (empty for a failed target). Cells that are not
// numbers ("-") rank lowest and are not added. Returns the column index of
// `by` as well, or an error naming the columns there are.
struct Aggregated {
  std::vector<std::string> header;  // TARGET first
  std::vector<std::vector<std::string>> rows;
};
absl::StatusOr<Aggregated> AggregateRows(
    const std::vector<std::string>& header, const std::vector<size_t>& keys,
    const std::string& default_by, const Aggregate& how, const std::vector<std::string>& targets,
    const std::vector<std::vector<std::vector<std::string>>>& rows);

// What a command run prints to and how (from netctl's global flags).
struct CommandContext {
  std::vector<Target> targets;
  const Dialer* dialer = nullptr;
  Format format = Format::kTable;
  // Show which target each line is about (always with several targets; also
  // for one that came from --dns or a targets file, so the reader sees which).
  bool label_targets = false;
  // Results in the order of the target list instead of as they arrive.
  bool target_order = false;
  // A progress line on stderr (a terminal) while a fleet call takes long.
  bool progress = false;
  // The command streams until Ctrl-C, which then ends it normally.
  bool streaming = false;
  Aggregate aggregate;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

// The one output layer: every command's results, unary or streamed, table or
// JSON, pass through a Printer. Data goes to stdout, errors and warnings to
// stderr. Results are shown as each target answers (or in target order with
// --order targets); tables: rows of one table with a TARGET column, or a
// block per target; JSON: one object per line,
// {"target","ok","error","result"}, the result in protobuf's JSON mapping
// (client/json.h). Finish names the failed targets with their error, and
// after Ctrl-C the targets that did not answer (exit status 130).
// Every method may be called from any thread.
class Printer {
 public:
  Printer(const CommandContext& c, View view);
  ~Printer();
  Printer(const Printer&) = delete;
  Printer& operator=(const Printer&) = delete;

  // A FanOut outcome: Answer or Failed.
  void Outcome(size_t target, client::Outcome outcome);
  // A target's whole answer.
  void Answer(size_t target, const google::protobuf::Message& result);
  // One part of a target's streamed answer (rows or a JSON line per part).
  void Part(size_t target, const google::protobuf::Message& part);
  // Text lines of a target's stream, in table mode (shown through TerminalText).
  void Lines(size_t target, absl::string_view text);
  // A target's stream ended well.
  void Done(size_t target);
  // A target failed. After Ctrl-C a cancelled call is "no answer", not a failure.
  void Failed(size_t target, const absl::Status& status);
  // A warning about a target's answer, on stderr.
  void Warning(size_t target, absl::string_view text);
  // Prints what is held and the summary; the exit status: 0 all answered
  // well, 1 some failed, 130 interrupted.
  int Finish();

 private:
  enum class State { kRunning, kDone, kFailed };
  struct Held {
    std::vector<std::vector<std::string>> rows;
    std::string text;
    bool block = false;  // text is a target's block (a blank line before all but the first)
  };
  bool multi() const;
  // Under mu_: a target's output goes out now or is held for its turn.
  Held& Sink(size_t target);
  void AddRows(size_t target, const google::protobuf::Message& m, Held& sink);
  void Release(size_t target);  // target done: flush, next held ones in order
  void Emit(Held& held, size_t target);
  void Write(bool force);
  void ClearProgress();
  int FinishAggregate();
  void ProgressLoop();

  const CommandContext& c_;
  View view_;
  std::mutex mu_;
  std::vector<State> state_;
  std::vector<absl::Status> error_;
  std::vector<Held> held_;
  size_t next_ = 0;      // target order: the first target not yet released
  size_t answered_ = 0;  // done or failed
  size_t blocks_ = 0;    // blocks printed (a blank line between them)
  std::unique_ptr<Table> table_;
  std::string out_;                                             // stdout bytes not yet written
  std::vector<std::vector<std::vector<std::string>>> numbers_;  // --top / --sum: per target
  bool progress_shown_ = false;
  absl::Time start_;
  bool finishing_ = false;
  std::condition_variable progress_cv_;
  std::thread progress_;
};

// Runs a unary call on every target and prints each answer as it arrives.
int RunUnary(const CommandContext& c, View view, const UnaryCall& call,
             absl::Duration extra_time = absl::ZeroDuration());

// Runs a server stream on every target at once: `run` reads one target's
// stream into the printer (Part, Lines or Answer) and returns how it ended.
using StreamRun =
    std::function<absl::Status(size_t index, grpc::Channel& channel, Printer& printer)>;
int RunStreams(const CommandContext& c, View view, const StreamRun& run);

// Reads a stream's messages (of type T) one at a time, each into an arena
// that it is dropped with once `fn` returns: a bulk stream (sockets,
// conntrack: hundreds of thousands of entries) then allocates and frees
// nothing per entry. `fn` must not keep the message.
template <typename T, typename Reader, typename Fn>
void ReadEachInArena(Reader& reader, Fn&& fn) {
  std::vector<char> block(1 << 20);
  google::protobuf::ArenaOptions options;
  options.initial_block = block.data();
  options.initial_block_size = block.size();
  google::protobuf::Arena arena(options);
  for (;;) {
    T* message = google::protobuf::Arena::CreateMessage<T>(&arena);
    if (!reader.Read(message)) break;
    fn(*message);
    arena.Reset();
  }
}

std::string StatusCodeName(absl::StatusCode code);
// "CODE: message", the message through TerminalText.
std::string DescribeError(const absl::Status& status);

std::string JsonLine(const Target& target, const absl::Status& status,
                     const google::protobuf::Message* result);
// The same line, newline included, appended to `out`.
void AppendJsonLine(const Target& target, const absl::Status& status,
                    const google::protobuf::Message* result, std::string* out);

// Prints outcomes gathered by FanOut (commands that act on all of them
// first), in target order, through a Printer.
int PrintOutcomes(const CommandContext& c, std::vector<Outcome> outcomes, const View& view);

// Formatting helpers shared by the views.
std::string Num(uint64_t v);
std::string SignedNum(int64_t v);
std::string Rate(double per_second);
// Milliseconds from microseconds as printf's "%.3g" writes them, and bits
// per second from bytes per second as "%.0fbps" (ss's spelling), without
// printf's cost (tens of thousands of socket lines use them).
std::string Millis(uint32_t us);
std::string BitsPerSecond(double bytes_per_second);
// An enum value's name without its prefix ("TRANSPORT_UNIX", "TRANSPORT_":
// "UNIX"), or its number when netctl does not know the value (a newer
// agent's: its name is empty).
std::string EnumSuffix(const std::string& name, absl::string_view prefix, int number);

}  // namespace netagent::client
