#include "client/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/json.h"

namespace netagent::client {
namespace {

bool Numeric(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+';
  });
}

bool IsControl(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

// Printable ASCII needs no look (most cells: numbers, addresses, names).
// Eight bytes at a time: none below 0x20, none 0x7f, none with the high bit.
bool Plain(absl::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    const uint64_t below_space = (x - kOnes * 0x20) & ~x;
    const uint64_t del = ((x ^ (kOnes * 0x7f)) - kOnes) & ~(x ^ (kOnes * 0x7f));
    if ((below_space | del | x) & kHigh) return false;
  }
  for (; n > 0; ++p, --n) {
    if (*p < 0x20 || *p > 0x7e) return false;
  }
  return true;
}

std::vector<std::string> TerminalCells(std::vector<std::string> cells) {
  for (std::string& c : cells) {
    if (!Plain(c)) c = TerminalText(c);
  }
  return cells;
}

// Lines of printable ASCII: each line Plain.
bool PlainLines(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    if (!Plain(text.substr(pos, end - pos))) return false;
    pos = end + 1;
  }
  return true;
}

}  // namespace

std::string TerminalText(absl::string_view text, bool keep_newlines) {
  // Most text is printable ASCII: copied as it is.
  if (keep_newlines ? PlainLines(text) : Plain(text)) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8 d = DecodeUtf8(text, pos);
    if (d.len == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(text[pos]));
      ++pos;
      continue;
    }
    if (!IsControl(d.cp) || (keep_newlines && d.cp == '\n')) {
      out.append(text.data() + pos, d.len);
    } else if (d.cp == '\n') {
      out += "\\n";
    } else if (d.cp == '\r') {
      out += "\\r";
    } else if (d.cp == '\t') {
      out += "\\t";
    } else if (d.cp < 0x80) {
      absl::StrAppendFormat(&out, "\\x%02x", d.cp);
    } else {
      absl::StrAppendFormat(&out, "\\u%04x", d.cp);
    }
    pos += d.len;
  }
  return out;
}

void AppendTerminalText(std::string* out, absl::string_view text) {
  if (Plain(text)) {
    out->append(text.data(), text.size());
  } else {
    *out += TerminalText(text);
  }
}

Table::Table(std::vector<std::string> header)
    : header_(TerminalCells(std::move(header))),
      width_(header_.size()),
      right_(header_.size(), true) {
  for (size_t i = 0; i < header_.size(); ++i) width_[i] = header_[i].size();
}

void Table::SetMinWidth(size_t col, size_t width) {
  if (col < width_.size()) width_[col] = std::max(width_[col], width);
}

void Table::AddRow(std::vector<std::string> cells) {
  if (fixed_) {
    if (ready_.capacity() == 0) ready_.reserve(1 << 20);
    Line(TerminalCells(std::move(cells)), nullptr, &ready_);
  } else {
    rows_.push_back(Row{TerminalCells(std::move(cells)), "", false});
  }
}

void Table::AddNote(std::vector<std::string> lead, std::string text) {
  if (fixed_) {
    const std::string note = TerminalText(text);
    Line(TerminalCells(std::move(lead)), &note, &ready_);
  } else {
    rows_.push_back(Row{TerminalCells(std::move(lead)), TerminalText(text), true});
  }
}

void Table::Line(const std::vector<std::string>& cells, const std::string* note,
                 std::string* out) const {
  const size_t start = out->size();
  for (size_t i = 0; i < cells.size() && i < width_.size(); ++i) {
    const bool last = note == nullptr && i + 1 == cells.size();
    const std::string& cell = cells[i];
    const size_t pad = width_[i] > cell.size() ? width_[i] - cell.size() : 0;
    if (right_[i] && note == nullptr) {
      out->append(pad, ' ');
      *out += cell;
    } else {
      *out += cell;
      if (!last) out->append(pad, ' ');
    }
    if (!last) *out += "  ";
  }
  if (note != nullptr) *out += *note;
  while (out->size() > start && out->back() == ' ') out->pop_back();
  *out += '\n';
}

void Table::RenderPending(std::string* out) {
  if (!fixed_) {
    for (const Row& r : rows_) {
      for (size_t i = 0; i < r.cells.size() && i < width_.size(); ++i) {
        width_[i] = std::max(width_[i], r.cells[i].size());
        if (!r.is_note && !Numeric(r.cells[i])) right_[i] = false;
      }
    }
    // A column no row has shown yet is left-aligned.
    if (rows_.empty()) right_.assign(right_.size(), false);
    fixed_ = true;
    Line(header_, nullptr, out);
    for (const Row& r : rows_) Line(r.cells, r.is_note ? &r.note : nullptr, out);
    rows_.clear();
    rows_.shrink_to_fit();
  }
  if (out->empty()) {
    out->swap(ready_);
  } else {
    *out += ready_;
  }
  ready_.clear();
}

void Table::Render(std::ostream& out) {
  std::string s;
  RenderPending(&s);
  out << s;
}

std::string StatusCodeName(absl::StatusCode code) {
  std::string s = absl::StatusCodeToString(code);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](char c) { return c == ' ' ? '_' : ::toupper(c); });
  return s;
}

std::string DescribeError(const absl::Status& status) {
  return absl::StrCat(StatusCodeName(status.code()), ": ", TerminalText(status.message()));
}

void AppendJsonLine(const Target& target, const absl::Status& status,
                    const google::protobuf::Message* result, std::string* out) {
  *out += "{\"target\":";
  AppendJsonString(target.display, out);
  absl::StrAppend(out, ",\"ok\":", status.ok() ? "true" : "false", ",\"error\":");
  if (status.ok()) {
    *out += "null";
  } else {
    *out += "{\"code\":";
    AppendJsonString(StatusCodeName(status.code()), out);
    *out += ",\"message\":";
    AppendJsonString(status.message(), out);
    *out += "}";
  }
  *out += ",\"result\":";
  if (result != nullptr) {
    AppendJson(*result, out);
  } else {
    *out += "null";
  }
  *out += "}\n";
}

std::string JsonLine(const Target& target, const absl::Status& status,
                     const google::protobuf::Message* result) {
  std::string out;
  AppendJsonLine(target, status, result, &out);
  out.pop_back();
  return out;
}

namespace {

// Exit status of a usage error.
constexpr int kUsage = 2;
// Rows held before a streamed table's widths are fixed (ss-like output
// starts after this many sockets, not after the last one).
constexpr size_t kFirstPage = 1000;
// Bytes of stdout collected before a write.
constexpr size_t kWriteChunk = 256 << 10;
// Targets named in a summary line before "... and N more".
constexpr size_t kNamed = 20;

std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < kNamed; ++i) {
    absl::StrAppend(&s, i ? ", " : "", names[i]);
  }
  if (names.size() > kNamed) absl::StrAppend(&s, " and ", names.size() - kNamed, " more");
  return s;
}

}  // namespace

std::string UnexpectedMessage(const google::protobuf::Message& m, absl::string_view expected) {
  return absl::StrCat("netctl: a ", m.GetDescriptor()->full_name(), " where a ", expected,
                      " was expected (a netctl bug)");
}

Printer::Printer(const CommandContext& c, View view)
    : c_(c),
      view_(std::move(view)),
      state_(c.targets.size(), State::kRunning),
      error_(c.targets.size()),
      held_(c.targets.size()),
      start_(absl::Now()) {
  if (c_.format == Format::kTable && view_.rows) {
    std::vector<std::string> header = view_.header;
    if (multi()) header.insert(header.begin(), "TARGET");
    table_ = std::make_unique<Table>(std::move(header));
    if (multi()) {
      size_t width = 0;
      for (const Target& t : c_.targets) width = std::max(width, TerminalText(t.display).size());
      table_->SetMinWidth(0, width);
    }
  }
  if (c_.progress && c_.format == Format::kTable && c_.targets.size() > 1 && !c_.streaming) {
    progress_ = std::thread([this] { ProgressLoop(); });
  }
}

Printer::~Printer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finishing_ = true;
  }
  progress_cv_.notify_all();
  if (progress_.joinable()) progress_.join();
}

bool Printer::multi() const { return c_.label_targets || c_.targets.size() > 1; }

Printer::Held& Printer::Sink(size_t target) {
  // Output of the target whose turn it is goes straight out; in arrival
  // order every target's turn is now.
  static thread_local Held direct;
  if (!c_.target_order || target == next_) {
    direct.rows.clear();
    direct.text.clear();
    direct.block = false;
    return direct;
  }
  return held_[target];
}

void Printer::AddRows(size_t target, const google::protobuf::Message& m, Held& sink) {
  std::vector<std::vector<std::string>> rows;
  view_.rows(m, rows);
  if (multi()) {
    for (auto& r : rows) r.insert(r.begin(), c_.targets[target].display);
  }
  if (sink.rows.empty()) {
    sink.rows = std::move(rows);
  } else {
    for (auto& r : rows) sink.rows.push_back(std::move(r));
  }
}

void Printer::Emit(Held& held, size_t /*target*/) {
  if (table_ != nullptr) {
    for (auto& r : held.rows) table_->AddRow(std::move(r));
    held.rows.clear();
    // Fix the widths once the first page is here; until then rows are held.
    if (table_->fixed() || table_->held() >= kFirstPage) table_->RenderPending(&out_);
  }
  if (!held.text.empty()) {
    // Blocks are separated in the order they are printed.
    if (held.block && blocks_++ > 0) out_ += '\n';
    out_ += held.text;
    held.text.clear();
  }
  held.block = false;
}

void Printer::Release(size_t target) {
  // A fleet's table shows each target's rows as it answers; one target's
  // table is shown whole at the end (widths from every row).
  // Widths are fixed by the first answer that has rows (not by a failed or
  // empty one, which would leave only the header's).
  const bool render = table_ != nullptr && multi() && (table_->fixed() || table_->held() > 0);
  if (!c_.target_order) {
    if (render) table_->RenderPending(&out_);
    Write(true);
    return;
  }
  if (target != next_) return;
  // The next targets in order: what they hold goes out; a finished one
  // passes the turn on, a running one keeps it (its output now goes out
  // directly).
  while (next_ < state_.size()) {
    if (next_ != target) Emit(held_[next_], next_);
    if (state_[next_] == State::kRunning) break;
    ++next_;
    if (table_ != nullptr && multi() && (table_->fixed() || table_->held() > 0)) {
      table_->RenderPending(&out_);
    }
  }
  Write(true);
}

void Printer::Outcome(size_t target, client::Outcome outcome) {
  if (outcome.status.ok() && outcome.result != nullptr) {
    Answer(target, *outcome.result);
  } else if (outcome.status.ok()) {
    Done(target);
  } else {
    Failed(target, outcome.status);
  }
}

void Printer::Answer(size_t target, const google::protobuf::Message& result) {
  std::lock_guard<std::mutex> lock(mu_);
  if (c_.aggregate.active()) {
    // Ranked or added up at the end: nothing to show before every answer.
    if (numbers_.empty()) numbers_.resize(c_.targets.size());
    (view_.numbers ? view_.numbers : view_.rows)(result, numbers_[target]);
    state_[target] = State::kDone;
    ++answered_;
    return;
  }
  Held& sink = Sink(target);
  if (c_.format == Format::kJson) {
    AppendJsonLine(c_.targets[target], absl::OkStatus(), &result, &sink.text);
  } else if (view_.block) {
    if (multi()) {
      absl::StrAppend(&sink.text, "== ", TerminalText(c_.targets[target].display), " ==\n");
      sink.block = true;
    }
    std::ostringstream block;
    view_.block(result, block);
    sink.text += TerminalText(block.str(), /*keep_newlines=*/true);
  } else {
    AddRows(target, result, sink);
  }
  if (&sink != &held_[target]) Emit(sink, target);
  state_[target] = State::kDone;
  ++answered_;
  Release(target);
}

void Printer::Part(size_t target, const google::protobuf::Message& part) {
  std::lock_guard<std::mutex> lock(mu_);
  Held& sink = Sink(target);
  if (c_.format == Format::kJson) {
    // Straight into the output when it is this target's turn (a bulk stream
    // writes tens of megabytes: no copy on the way).
    AppendJsonLine(c_.targets[target], absl::OkStatus(), &part,
                   &sink == &held_[target] ? &sink.text : &out_);
  } else if (table_ != nullptr) {
    AddRows(target, part, sink);
  }
  if (&sink != &held_[target]) {
    Emit(sink, target);
    Write(c_.streaming);  // a watch is read as it goes; bulk streams in chunks
  }
}

void Printer::Lines(size_t target, absl::string_view text) {
  std::lock_guard<std::mutex> lock(mu_);
  Held& sink = Sink(target);
  if (PlainLines(text)) {
    sink.text.append(text.data(), text.size());
  } else {
    sink.text += TerminalText(text, /*keep_newlines=*/true);
  }
  if (!sink.text.empty() && sink.text.back() != '\n') sink.text += '\n';
  if (&sink != &held_[target]) {
    Emit(sink, target);
    Write(true);  // a stream is watched as it goes
  }
}

void Printer::Done(size_t target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_[target] != State::kRunning) return;
  state_[target] = State::kDone;
  ++answered_;
  Release(target);
}

void Printer::Failed(size_t target, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_[target] != State::kRunning) return;
  if (CallsStopping() && absl::IsCancelled(status)) {
    // Interrupted: a streaming command ends so; others name it at Finish.
    if (c_.streaming) {
      state_[target] = State::kDone;
      ++answered_;
      Release(target);
    }
    return;
  }
  state_[target] = State::kFailed;
  error_[target] = status;
  ++answered_;
  if (c_.format == Format::kJson) {
    // Machines read the failure beside the results.
    Held& sink = Sink(target);
    AppendJsonLine(c_.targets[target], status, nullptr, &sink.text);
    if (&sink != &held_[target]) Emit(sink, target);
  } else if (c_.targets.size() == 1) {
    // One target: its error now (several: named together at the end).
    ClearProgress();
    Write(true);
    *c_.err << "netctl: " << (multi() ? TerminalText(c_.targets[target].display) + ": " : "")
            << DescribeError(status) << "\n";
    c_.err->flush();
  }
  Release(target);
}

void Printer::Warning(size_t target, absl::string_view text) {
  std::lock_guard<std::mutex> lock(mu_);
  ClearProgress();
  *c_.err << TerminalText(
                 absl::StrCat("netctl: ", multi() ? c_.targets[target].display + ": " : "", text))
          << "\n";
}

void Printer::Write(bool force) {
  if (out_.empty() || (!force && out_.size() < kWriteChunk)) return;
  ClearProgress();
  c_.out->write(out_.data(), static_cast<std::streamsize>(out_.size()));
  c_.out->flush();
  out_.clear();
}

void Printer::ClearProgress() {
  if (!progress_shown_) return;
  *c_.err << "\r\x1b[K";
  c_.err->flush();
  progress_shown_ = false;
}

void Printer::ProgressLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!finishing_) {
    progress_cv_.wait_for(lock, std::chrono::milliseconds(250));
    if (finishing_ || absl::Now() - start_ < absl::Seconds(1)) continue;
    size_t failed = 0;
    std::vector<std::string> waiting;
    for (size_t i = 0; i < state_.size(); ++i) {
      if (state_[i] == State::kFailed) ++failed;
      if (state_[i] == State::kRunning && waiting.size() < 3) {
        waiting.push_back(TerminalText(c_.targets[i].display));
      }
    }
    std::string line = absl::StrFormat("netctl: %d of %d answered, %d failed, %d running (%.0fs)",
                                       answered_, state_.size(), failed, state_.size() - answered_,
                                       absl::ToDoubleSeconds(absl::Now() - start_));
    if (!waiting.empty()) absl::StrAppend(&line, "; waiting on ", absl::StrJoin(waiting, ", "));
    // One row of the terminal: a wrapped line could not be cleared by \r.
    winsize ws{};
    const size_t columns =
        ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : 79;
    if (line.size() > columns) line.resize(columns);
    *c_.err << "\r\x1b[K" << line;
    c_.err->flush();
    progress_shown_ = true;
  }
}

int Printer::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  finishing_ = true;
  progress_cv_.notify_all();
  ClearProgress();
  if (c_.aggregate.active()) {
    const int status = FinishAggregate();
    if (status == kUsage) return status;
  }
  // What arrived but waited for its turn (after Ctrl-C) goes out now.
  for (size_t i = next_; i < held_.size(); ++i) Emit(held_[i], i);
  size_t failed = 0;
  std::vector<std::string> silent;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (state_[i] == State::kFailed) ++failed;
    // Still running at the end: only after Ctrl-C does a call end unanswered.
    if (state_[i] == State::kRunning && CallsStopping()) {
      silent.push_back(TerminalText(c_.targets[i].display));
    }
  }
  if (table_ != nullptr && !c_.aggregate.active() &&
      (table_->fixed() || table_->held() > 0 || multi() || failed == 0)) {
    table_->RenderPending(&out_);
  }
  Write(true);
  std::ostream& err = *c_.err;
  if (failed > 0 && c_.targets.size() > 1) {
    err << "netctl: " << failed << " of " << c_.targets.size() << " targets failed:\n";
    // Named with their error (the data went to stdout, maybe a pipe).
    size_t named = 0;
    for (size_t i = 0; i < state_.size(); ++i) {
      if (state_[i] != State::kFailed) continue;
      if (named++ == kNamed) {
        err << "  ... and " << failed - kNamed << " more\n";
        break;
      }
      err << "  " << TerminalText(c_.targets[i].display) << ": " << DescribeError(error_[i])
          << "\n";
    }
  }
  if (!silent.empty()) {
    err << "netctl: interrupted; no answer from " << silent.size() << " of " << c_.targets.size()
        << " targets: " << NameList(silent) << "\n";
  }
  err.flush();
  if (!silent.empty()) return 130;
  return failed > 0 ? 1 : 0;
}

namespace {

// A cell's number; "-" (not known) and text are no number.
bool CellNumber(const std::string& cell, double* v) {
  return Numeric(cell) && absl::SimpleAtod(cell, v) && std::isfinite(*v);
}

double CellValue(const std::string& cell) {
  double v;
  return CellNumber(cell, &v) ? v : -std::numeric_limits<double>::infinity();
}

std::string Int128Text(__int128 v) {
  if (v == 0) return "0";
  const bool negative = v < 0;
  unsigned __int128 u = negative ? -static_cast<unsigned __int128>(v) : v;
  std::string digits;
  for (; u > 0; u /= 10) digits.insert(digits.begin(), static_cast<char>('0' + u % 10));
  return negative ? "-" + digits : digits;
}

std::string SumText(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.1f", v);
}

}  // namespace

int Printer::FinishAggregate() {
  std::vector<std::string> names;
  for (const Target& t : c_.targets) names.push_back(t.display);
  numbers_.resize(c_.targets.size());
  const auto& header = view_.numbers ? view_.numbers_header : view_.header;
  auto agg = AggregateRows(header, view_.keys, view_.by, c_.aggregate, names, numbers_);
  if (!agg.ok()) {
    *c_.err << "netctl: " << TerminalText(agg.status().message()) << "\n";
    return kUsage;
  }
  if (c_.format == Format::kJson) {
    // One object per row: the columns by name, numbers as numbers.
    for (const auto& row : agg->rows) {
      std::string line = "{";
      for (size_t i = 0; i < row.size() && i < agg->header.size(); ++i) {
        if (i) line += ',';
        AppendJsonString(absl::AsciiStrToLower(agg->header[i]), &line);
        line += ':';
        double v;
        if (i > 0 && CellNumber(row[i], &v)) {
          line += row[i];
        } else {
          AppendJsonString(row[i], &line);
        }
      }
      out_ += line + "}\n";
    }
  } else {
    Table t(agg->header);
    for (auto& row : agg->rows) t.AddRow(std::move(row));
    t.RenderPending(&out_);
  }
  return 0;
}

absl::StatusOr<Aggregated> AggregateRows(
    const std::vector<std::string>& header, const std::vector<size_t>& keys,
    const std::string& default_by, const Aggregate& how, const std::vector<std::string>& targets,
    const std::vector<std::vector<std::vector<std::string>>>& rows) {
  if (header.empty() || keys.empty()) {
    return absl::InvalidArgumentError("--top and --sum: this command's results are not numbers");
  }
  const std::string by = how.by.empty() ? default_by : how.by;
  size_t by_col = header.size();
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string h = absl::AsciiStrToLower(header[i]);
    const std::string b = absl::AsciiStrToLower(by);
    if (h == b || h.substr(0, h.find('/')) == b) by_col = i;
  }
  if (by_col == header.size() || std::find(keys.begin(), keys.end(), by_col) != keys.end()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < header.size(); ++i) {
      if (std::find(keys.begin(), keys.end(), i) == keys.end()) names.push_back(header[i]);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--by: \"", by, "\" is not a number column here (", absl::StrJoin(names, ", "), ")"));
  }
  // Rows grouped by key, keys in first-seen order.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::pair<size_t, const std::vector<std::string>*>>> groups;
  for (size_t t = 0; t < rows.size(); ++t) {
    for (const auto& row : rows[t]) {
      std::string key;
      for (size_t k : keys) absl::StrAppend(&key, k < row.size() ? row[k] : "", "\x1f");
      auto [it, inserted] = groups.try_emplace(key);
      if (inserted) order.push_back(key);
      it->second.emplace_back(t, &row);
    }
  }
  Aggregated out;
  out.header = header;
  out.header.insert(out.header.begin(), "TARGET");
  for (const std::string& key : order) {
    auto& members = groups[key];
    if (how.sum) {
      // An agent's row has the header's columns, whatever it sent.
      std::vector<std::string> row = *members.front().second;
      row.resize(header.size(), "-");
      std::set<size_t> counted;
      for (size_t col = 0; col < row.size(); ++col) {
        if (std::find(keys.begin(), keys.end(), col) != keys.end()) continue;
        // A percentage (FILL%) adds up to nothing: not summed.
        if (header[col].find('%') != std::string::npos) {
          row[col] = "-";
          continue;
        }
        // Whole numbers add exactly (byte counters pass 2^53); others as doubles.
        __int128 whole = 0;
        double total = 0;
        bool any = false, all_whole = true;
        for (const auto& [t, r] : members) {
          double v;
          if (col >= r->size() || !CellNumber((*r)[col], &v)) continue;
          any = true;
          total += v;
          int64_t i;
          uint64_t u;
          if (absl::SimpleAtoi((*r)[col], &i)) {
            whole += i;
          } else if (absl::SimpleAtoi((*r)[col], &u)) {
            whole += static_cast<__int128>(u);
          } else {
            all_whole = false;
          }
        }
        row[col] = !any ? "-" : all_whole ? Int128Text(whole) : SumText(total);
      }
      for (const auto& [t, r] : members) counted.insert(t);
      row.insert(row.begin(), absl::StrCat("sum of ", counted.size()));
      out.rows.push_back(std::move(row));
      continue;
    }
    std::stable_sort(members.begin(), members.end(), [&](const auto& a, const auto& b) {
      const double va = by_col < a.second->size() ? CellValue((*a.second)[by_col]) : -INFINITY;
      const double vb = by_col < b.second->size() ? CellValue((*b.second)[by_col]) : -INFINITY;
      return va > vb;
    });
    for (size_t i = 0; i < members.size() && i < how.top; ++i) {
      std::vector<std::string> row = *members[i].second;
      row.resize(header.size(), "-");
      row.insert(row.begin(), targets[members[i].first]);
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

int RunUnary(const CommandContext& c, View view, const UnaryCall& call, absl::Duration extra_time) {
  if (c.aggregate.active()) {
    // A wrong --by is said before any target is asked.
    const auto& header = view.numbers ? view.numbers_header : view.header;
    auto check = AggregateRows(header, view.keys, view.by, c.aggregate, {}, {});
    if (!check.ok()) {
      *c.err << "netctl: " << TerminalText(check.status().message()) << "\n";
      return kUsage;
    }
  }
  Printer printer(c, std::move(view));
  FanOut(c.targets, *c.dialer, call, extra_time,
         [&](size_t i, client::Outcome o) { printer.Outcome(i, std::move(o)); });
  return printer.Finish();
}

int RunStreams(const CommandContext& c, View view, const StreamRun& run) {
  Printer printer(c, std::move(view));
  auto statuses = StreamAll(
      c.targets, *c.dialer,
      [&](const Target& t, grpc::Channel& ch) {
        const size_t i = static_cast<size_t>(&t - c.targets.data());
        absl::Status st = run(i, ch, printer);
        if (st.ok()) {
          printer.Done(i);
        } else {
          printer.Failed(i, st);
        }
        return st;
      },
      [&](size_t i, const absl::Status& st) { printer.Failed(i, st); });
  // (Every target's end has been told to the printer; Failed and Done are
  // said once per target.)
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (!statuses[i].ok()) printer.Failed(i, statuses[i]);
  }
  return printer.Finish();
}

int PrintOutcomes(const CommandContext& c, std::vector<client::Outcome> outcomes,
                  const View& view) {
  CommandContext ordered = c;
  ordered.target_order = true;
  ordered.progress = false;
  Printer printer(ordered, view);
  for (size_t i = 0; i < outcomes.size(); ++i) printer.Outcome(i, std::move(outcomes[i]));
  return printer.Finish();
}

std::string Num(uint64_t v) { return absl::StrCat(v); }
std::string SignedNum(int64_t v) { return absl::StrCat(v); }
std::string Rate(double per_second) { return absl::StrFormat("%.1f", per_second); }

std::string Millis(uint32_t us) {
  // Exact decimal arithmetic where it gives printf's answer: a value below
  // 1000 ms, rounded to three significant digits when that is not a tie (a
  // tie is decided by the double's binary value, as printf does: to_chars).
  if (us < 999500) {
    const uint32_t whole = us / 1000;
    const int int_digits = whole >= 100 ? 3 : whole >= 10 ? 2 : whole >= 1 ? 1 : 0;
    const int keep = int_digits == 0 ? 3 : 3 - int_digits;  // decimals kept
    uint32_t divisor = 1;
    for (int i = keep; i < 3; ++i) divisor *= 10;
    uint32_t q = us / divisor;
    const uint32_t r = us % divisor, half = divisor / 2;
    if (divisor == 1 || r != half) {
      if (divisor > 1 && r > half) ++q;
      uint32_t scale = 1;
      for (int i = 0; i < keep; ++i) scale *= 10;
      if (q / scale < 1000) {
        char buf[16];
        char* end = buf + sizeof(buf);
        char* p = end;
        uint32_t frac = q % scale;
        int decimals = keep;
        while (decimals > 0 && frac % 10 == 0) {  // %g drops trailing zeros
          frac /= 10;
          --decimals;
        }
        for (int i = 0; i < decimals; ++i, frac /= 10) *--p = static_cast<char>('0' + frac % 10);
        if (decimals > 0) *--p = '.';
        uint32_t w = q / scale;
        do {
          *--p = static_cast<char>('0' + w % 10);
          w /= 10;
        } while (w > 0);
        return std::string(p, end);
      }
    }
  }
  // to_chars with a precision is specified to write what printf would.
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), us / 1000.0, std::chars_format::general, 3);
  return std::string(buf, r.ptr);
}

std::string BitsPerSecond(double bytes_per_second) {
  const double bits = bytes_per_second * 8;
  if (bits >= 0 && bits < 9e15 && bits == std::floor(bits)) {
    return absl::StrCat(static_cast<uint64_t>(bits), "bps");  // an integer: exact
  }
  char buf[400];
  auto r = std::to_chars(buf, buf + sizeof(buf), bytes_per_second * 8, std::chars_format::fixed, 0);
  if (r.ec != std::errc()) return absl::StrFormat("%.0fbps", bytes_per_second * 8);
  return absl::StrCat(absl::string_view(buf, static_cast<size_t>(r.ptr - buf)), "bps");
}

std::string EnumSuffix(const std::string& name, absl::string_view prefix, int number) {
  absl::string_view n = name;
  if (!absl::ConsumePrefix(&n, prefix) || n.empty()) return absl::StrCat(number);
  return std::string(n);
}

}  // namespace netagent::client
