#include "client/output.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_format.h"
#include "netagent/v1/conntrack.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/telemetry.pb.h"

namespace netagent::client {
namespace {

Target T(const std::string& s) { return *ParseTarget(s); }

CommandContext Context(std::vector<Target> targets, Format format, std::ostream& out,
                       std::ostream& err) {
  CommandContext c;
  c.targets = std::move(targets);
  c.format = format;
  c.out = &out;
  c.err = &err;
  return c;
}

View CounterView() {
  View view;
  view.header = {"NAME", "VALUE"};
  view.rows = TypedRows<netagent::v1::Counter>([](const netagent::v1::Counter& c, Rows& rows) {
    rows.push_back({c.name(), SignedNum(c.value())});
  });
  return view;
}

netagent::v1::Counter Counter(const std::string& name, int64_t value) {
  netagent::v1::Counter c;
  c.set_name(name);
  c.set_value(value);
  return c;
}

TEST(Table, AlignsNumbersRightAndTextLeft) {
  Table t({"NAME", "VALUE"});
  t.AddRow({"TcpExtListenOverflows", "7"});
  t.AddRow({"IpInReceives", "123456"});
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(),
            "NAME                    VALUE\n"
            "TcpExtListenOverflows       7\n"
            "IpInReceives           123456\n");
}

TEST(Table, NotesDoNotWidenColumns) {
  Table t({"TARGET", "CPU"});
  t.AddRow({"a", "0"});
  t.AddNote({"b"}, "error: UNAVAILABLE: a long explanation");
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(),
            "TARGET  CPU\na         0\nb       error: UNAVAILABLE: a long explanation\n");
}

TEST(StatusCodeName, CanonicalSpelling) {
  EXPECT_EQ(StatusCodeName(absl::StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_EQ(StatusCodeName(absl::StatusCode::kUnavailable), "UNAVAILABLE");
}

TEST(JsonLine, OkAndError) {
  netagent::v1::Counter c;
  c.set_name("TcpExtListenOverflows");
  c.set_value(3);
  EXPECT_EQ(JsonLine(T("node-1"), absl::OkStatus(), &c),
            "{\"target\":\"node-1\",\"ok\":true,\"error\":null,\"result\":{\"name\":"
            "\"TcpExtListenOverflows\",\"group\":\"\",\"field\":\"\",\"source\":\"COUNTER_SOURCE_"
            "UNSPECIFIED\",\"kind\":\"COUNTER_KIND_UNSPECIFIED\",\"value\":\"3\"}}");
  EXPECT_EQ(JsonLine(T("node-2"), absl::UnavailableError("no \"route\""), nullptr),
            "{\"target\":\"node-2\",\"ok\":false,\"error\":{\"code\":\"UNAVAILABLE\",\"message\":"
            "\"no \\\"route\\\"\"},\"result\":null}");
}

// fill_percent is absent when the agent does not know the limit, not 0;
// a known 0% is printed.
TEST(JsonLine, AnUnknownFillIsAbsentAKnownZeroIsPrinted) {
  netagent::v1::GetConntrackStatsResponse s;
  s.set_count(12);
  s.set_source("procfs");
  const std::string unknown = JsonLine(T("node-1"), absl::OkStatus(), &s);
  EXPECT_EQ(unknown.find("fillPercent"), std::string::npos) << unknown;
  s.set_max(65536);
  s.set_fill_percent(0);
  const std::string known = JsonLine(T("node-1"), absl::OkStatus(), &s);
  EXPECT_NE(known.find("\"fillPercent\":0"), std::string::npos) << known;
}

TEST(JsonLine, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  Target t = T("node-1");
  t.display = "node-\xff";
  EXPECT_EQ(JsonLine(t, absl::OkStatus(), nullptr),
            "{\"target\":\"node-\\ufffd\",\"ok\":true,\"error\":null,\"result\":null}");
}

TEST(PrintOutcomes, AFailingTargetIsReportedBesideTheOthers) {
  std::vector<Target> targets = {T("a"), T("b"), T("c")};
  std::vector<Outcome> outcomes(3);
  auto ok = std::make_unique<netagent::v1::Counter>();
  ok->set_name("X");
  ok->set_value(1);
  outcomes[0].result = std::make_unique<netagent::v1::Counter>(*ok);
  outcomes[1].status = absl::UnavailableError("connection refused");
  outcomes[2].result = std::move(ok);
  const View view = CounterView();
  std::ostringstream out, err;
  // Data on stdout, the failed target on stderr with its error.
  EXPECT_EQ(PrintOutcomes(Context(targets, Format::kTable, out, err), std::move(outcomes), view),
            1);
  EXPECT_EQ(out.str(),
            "TARGET  NAME  VALUE\n"
            "a       X         1\n"
            "c       X         1\n");
  EXPECT_EQ(err.str(),
            "netctl: 1 of 3 targets failed:\n"
            "  b: UNAVAILABLE: connection refused\n");
  {
    // Many failures: the first 20 named, the rest counted.
    std::vector<Target> many;
    std::vector<Outcome> failing(25);
    for (int i = 0; i < 25; ++i) {
      Target t;
      t.display = absl::StrCat("node-", i);
      many.push_back(t);
      failing[i].status = absl::DeadlineExceededError("no answer");
    }
    std::ostringstream mout, merr;
    EXPECT_EQ(PrintOutcomes(Context(many, Format::kTable, mout, merr), std::move(failing), view),
              1);
    EXPECT_NE(merr.str().find("netctl: 25 of 25 targets failed:\n  node-0: DEADLINE_EXCEEDED"),
              std::string::npos)
        << merr.str();
    EXPECT_NE(merr.str().find("  node-19: "), std::string::npos);
    EXPECT_EQ(merr.str().find("node-20"), std::string::npos);
    EXPECT_NE(merr.str().find("  ... and 5 more\n"), std::string::npos);
  }
  std::vector<Outcome> again(3);
  again[0].result = std::make_unique<netagent::v1::Counter>(Counter("X", 1));
  again[1].status = absl::UnavailableError("connection refused");
  again[2].result = std::make_unique<netagent::v1::Counter>(Counter("X", 1));
  std::ostringstream jout, jerr;
  EXPECT_EQ(PrintOutcomes(Context(targets, Format::kJson, jout, jerr), std::move(again), view), 1);
  std::string json = jout.str();
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 3);
  EXPECT_NE(json.find("{\"target\":\"b\",\"ok\":false"), std::string::npos);
}

TEST(PrintOutcomes, AllOkIsExitZero) {
  std::vector<Target> targets = {T("a")};
  std::vector<Outcome> outcomes(1);
  outcomes[0].result = std::make_unique<netagent::v1::Counter>();
  View view;
  view.header = {"NAME"};
  view.rows = [](const google::protobuf::Message&, std::vector<std::vector<std::string>>& rows) {
    rows.push_back({"x"});
  };
  std::ostringstream out, err;
  EXPECT_EQ(PrintOutcomes(Context(targets, Format::kTable, out, err), std::move(outcomes), view),
            0);
  EXPECT_EQ(out.str(), "NAME\nx\n");
  EXPECT_EQ(err.str(), "");
}

TEST(TerminalText, MakesWhatATerminalWouldObeyVisible) {
  EXPECT_EQ(TerminalText("plain text, café ✓"), "plain text, café ✓");
  EXPECT_EQ(TerminalText("\x1b[2K\rallow"), "\\x1b[2K\\rallow");
  EXPECT_EQ(TerminalText("a\nb\tc\x7f"), "a\\nb\\tc\\x7f");
  EXPECT_EQ(TerminalText("a\nb", /*keep_newlines=*/true), "a\nb");
  EXPECT_EQ(TerminalText("\xc2\x9b"
                         "31m"),
            "\\u009b31m");                                     // C1 CSI
  EXPECT_EQ(TerminalText("x\xe2\x80\xaey"), "x\\u202ey");      // right-to-left override
  EXPECT_EQ(TerminalText("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");  // not UTF-8
  EXPECT_EQ(TerminalText(std::string("nul\0", 4)), "nul\\x00");
  // Eight bytes at a time, and the bytes after: a control anywhere is seen.
  for (size_t at = 0; at < 20; ++at) {
    std::string text(20, 'a');
    text[at] = '\x1b';
    EXPECT_EQ(TerminalText(text).find('\x1b'), std::string::npos) << at;
    EXPECT_EQ(TerminalText(text, /*keep_newlines=*/true).find('\x1b'), std::string::npos) << at;
    text[at] = '\n';
    EXPECT_EQ(TerminalText(text, /*keep_newlines=*/true), text) << at;
  }
}

TEST(AppendTerminalText, AppendsWhatTerminalTextGives) {
  for (const std::string text : {"10.0.0.1", "", "caf\xc3\xa9", "\x1b[2K\rallow", "a\nb", "\xff"}) {
    std::string out = "x ";
    AppendTerminalText(&out, text);
    EXPECT_EQ(out, "x " + TerminalText(text)) << text;
  }
}

// A rule comment that clears its line and prints an "allow" row of its own
// cannot reach the terminal: the row shows the escape, on its own line.
TEST(Table, CellsCannotDrawAFakeRow) {
  Table t({"ID", "ACTION", "MATCH", "COMMENT"});
  t.AddRow({"1", "block", "10.0.0.1", "\x1b[2K\r2  allow   10.0.0.1  trusted"});
  t.AddRow({"2", "block", "10.0.0.2", "line\n3  allow  10.6.6.6"});
  std::ostringstream out;
  t.Render(out);
  const std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;  // header and two rows
  EXPECT_NE(text.find("\\x1b[2K\\r2  allow"), std::string::npos) << text;
  EXPECT_NE(text.find("line\\n3"), std::string::npos) << text;
}

// Whatever byte a terminal would obey, wherever it is in a long cell (the
// check looks at eight bytes at a time), is shown escaped.
TEST(Table, EveryControlByteInAnyPositionIsEscaped) {
  for (char bad : {'\x01', '\x1b', '\x1f', '\x7f', '\x80', '\xff'}) {
    for (size_t pos = 0; pos < 20; ++pos) {
      std::string cell(20, 'a');
      cell[pos] = bad;
      Table t({"C"});
      t.AddRow({cell});
      std::ostringstream out;
      t.Render(out);
      EXPECT_EQ(out.str().find(bad), std::string::npos) << static_cast<int>(bad) << " at " << pos;
    }
  }
  Table t({"C"});
  t.AddRow({std::string(" ~azAZ09") + "0123456789!@#$%^&*()"});
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(), "C\n ~azAZ090123456789!@#$%^&*()\n");
}

TEST(Table, WidthsAreThoseOfTheEscapedText) {
  Table t({"A", "B"});
  t.AddRow({"\x1b", "x"});
  t.AddRow({"abcd", "y"});
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(), "A     B\n\\x1b  x\nabcd  y\n");
}

TEST(PrintOutcomes, ErrorsBlocksAndTargetNamesAreEscaped) {
  std::vector<Target> targets = {T("a"), T("b")};
  targets[1].display = "b\x1b]0;owned\x07";
  std::vector<Outcome> outcomes(2);
  outcomes[0].result = std::make_unique<netagent::v1::Counter>();
  outcomes[1].status = absl::InvalidArgumentError("comment: \x1b[31mred\x1b[0m");
  View view;
  view.block = [](const google::protobuf::Message&, std::ostream& out) {
    out << "note: \x1b[1A\x1b[2Kfine\nsecond line\n";
  };
  std::ostringstream out, err;
  EXPECT_EQ(PrintOutcomes(Context(targets, Format::kTable, out, err), std::move(outcomes), view),
            1);
  EXPECT_EQ(out.str(), "== a ==\nnote: \\x1b[1A\\x1b[2Kfine\nsecond line\n");
  EXPECT_EQ(err.str(),
            "netctl: 1 of 2 targets failed:\n"
            "  b\\x1b]0;owned\\x07: INVALID_ARGUMENT: comment: \\x1b[31mred\\x1b[0m\n");
  EXPECT_EQ(DescribeError(absl::NotFoundError("no \x1b[2Kthing")), "NOT_FOUND: no \\x1b[2Kthing");
}

// Results are printed as targets answer: a fleet's rows go out per target
// (widths from the first answer; the TARGET column sized for every target).
TEST(Printer, ShowsEachTargetAsItAnswers) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a"), T("longer-name"), T("c")}, Format::kTable, out, err);
  Printer p(c, CounterView());
  p.Answer(2, Counter("Z", 3));
  EXPECT_EQ(out.str(), "TARGET       NAME  VALUE\nc            Z         3\n");
  p.Failed(1, absl::UnavailableError("not connected within 3s"));
  p.Answer(0, Counter("LongerName", 12345));
  EXPECT_EQ(p.Finish(), 1);
  EXPECT_EQ(out.str(),
            "TARGET       NAME  VALUE\n"
            "c            Z         3\n"
            "a            LongerName  12345\n");
  EXPECT_EQ(
      err.str(),
      "netctl: 1 of 3 targets failed:\n  longer-name: UNAVAILABLE: not connected within 3s\n");
}

// --order targets: a target's result waits for the ones listed before it.
TEST(Printer, TargetOrderHoldsLaterTargets) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a"), T("b"), T("c")}, Format::kJson, out, err);
  c.target_order = true;
  Printer p(c, CounterView());
  p.Answer(2, Counter("C", 3));
  p.Part(1, Counter("B1", 2));
  EXPECT_EQ(out.str(), "");
  p.Answer(0, Counter("A", 1));
  // a, then what b streamed so far; c waits for b.
  const std::string first = out.str();
  EXPECT_EQ(std::count(first.begin(), first.end(), '\n'), 2) << first;
  p.Part(1, Counter("B2", 2));
  p.Done(1);
  EXPECT_EQ(p.Finish(), 0);
  const std::string s = out.str();
  const size_t a = s.find("\"A\""), b1 = s.find("\"B1\""), b2 = s.find("\"B2\""),
               cc = s.find("\"C\"");
  ASSERT_NE(cc, std::string::npos) << s;
  EXPECT_LT(a, b1);
  EXPECT_LT(b1, b2);
  EXPECT_LT(b2, cc);
}

// A streamed table starts once its first page is here, with that page's
// widths; later rows keep them (a wider cell pushes its line, nothing is cut).
TEST(Printer, StreamedTableFixesWidthsOnTheFirstPage) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a")}, Format::kTable, out, err);
  Printer p(c, CounterView());
  for (int i = 0; i < 999; ++i) p.Part(0, Counter("N", i));
  EXPECT_EQ(out.str(), "");  // not a page yet
  p.Part(0, Counter("N", 5));
  p.Part(0, Counter("MuchLongerName", 7));
  p.Done(0);
  EXPECT_EQ(p.Finish(), 0);
  const std::string s = out.str();
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1002);
  EXPECT_EQ(s.substr(0, s.find('\n')), "NAME  VALUE");
  EXPECT_NE(s.find("\nN       998\n"), std::string::npos);
  EXPECT_NE(s.find("\nMuchLongerName      7\n"), std::string::npos) << s.substr(s.size() - 80);
}

// After Ctrl-C, what arrived is printed, the silent targets are named and the
// status is 130; a streaming command (watch) ends normally.
TEST(Printer, InterruptedRunNamesTheSilentTargets) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a"), T("b"), T("c")}, Format::kTable, out, err);
  c.target_order = true;
  Printer p(c, CounterView());
  p.Answer(1, Counter("B", 2));
  StopCalls();
  p.Failed(0, absl::CancelledError("interrupted"));
  EXPECT_EQ(p.Finish(), 130);
  EXPECT_EQ(out.str(), "TARGET  NAME  VALUE\nb       B         2\n");
  EXPECT_EQ(err.str(), "netctl: interrupted; no answer from 2 of 3 targets: a, c\n");
  std::ostringstream wout, werr;
  CommandContext w = Context({T("a")}, Format::kTable, wout, werr);
  w.streaming = true;
  Printer watch(w, View());
  watch.Lines(0, "#1 sample\n");
  watch.Failed(0, absl::CancelledError("cancelled"));
  EXPECT_EQ(watch.Finish(), 0);
  EXPECT_EQ(wout.str(), "#1 sample\n");
  ResumeCallsForTesting();
}

// The fast number formats write exactly what printf's formats would.
TEST(Formats, MillisAndBitsPerSecondAreWhatPrintfWrites) {
  std::mt19937_64 rng(7);
  std::vector<uint32_t> us = {1234567, 4294967295u};
  for (uint32_t v = 0; v < 1100000; ++v) us.push_back(v);  // every tie below a second too
  for (int i = 0; i < 20000; ++i) us.push_back(static_cast<uint32_t>(rng() >> (rng() % 60 + 4)));
  for (uint32_t v : us) {
    EXPECT_EQ(Millis(v), absl::StrFormat("%.3g", v / 1000.0)) << v;
  }
  std::vector<double> rates = {0, 0.5, 1.5, 2.5, 125000, 1.25e9, 1.8446744073709552e19, 3e300};
  for (int i = 0; i < 20000; ++i) rates.push_back(static_cast<double>(rng() >> (rng() % 64)));
  for (double r : rates) {
    EXPECT_EQ(BitsPerSecond(r), absl::StrFormat("%.0fbps", r * 8)) << r;
  }
}

// A value netctl does not know (a newer agent's) has an empty name: it is
// shown by number, where cutting the prefix off the name threw out_of_range.
TEST(EnumSuffix, AnUnknownValueIsItsNumber) {
  EXPECT_EQ(EnumSuffix(v1::Transport_Name(v1::TRANSPORT_UNIX), "TRANSPORT_", v1::TRANSPORT_UNIX),
            "UNIX");
  EXPECT_EQ(EnumSuffix(v1::LogLevel_Name(v1::LOG_LEVEL_WARN), "LOG_LEVEL_", v1::LOG_LEVEL_WARN),
            "WARN");
  const auto future = static_cast<v1::Severity>(42);
  ASSERT_EQ(v1::Severity_Name(future), "");
  EXPECT_THROW((void)v1::Severity_Name(future).substr(9), std::out_of_range);  // what netctl did
  EXPECT_EQ(EnumSuffix(v1::Severity_Name(future), "SEVERITY_", future), "42");
  EXPECT_EQ(EnumSuffix("SEVERITY_", "SEVERITY_", 7), "7");
  EXPECT_EQ(EnumSuffix("OTHER_INFO", "SEVERITY_", 1), "1");
}

}  // namespace
}  // namespace netagent::client

namespace netagent::client {
namespace {

// --top: per key the N highest, ties in target order, "-" lowest; --sum:
// numeric columns added, keys kept; --by names a number column.
TEST(AggregateRows, TopAndSumArithmetic) {
  const std::vector<std::string> header = {"NAME", "VALUE", "RATE/s"};
  const std::vector<std::string> targets = {"a", "b", "c", "d"};
  std::vector<std::vector<std::vector<std::string>>> rows = {
      {{"X", "10", "1.5"}, {"Y", "7", "-"}},
      {{"X", "30", "0.5"}, {"Y", "7", "2.0"}},
      {},  // failed
      {{"X", "20", "1.5"}, {"Y", "9", "0.0"}}};
  Aggregate top;
  top.top = 2;
  auto r = AggregateRows(header, {0}, "RATE/s", top, targets, rows);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header, (std::vector<std::string>{"TARGET", "NAME", "VALUE", "RATE/s"}));
  EXPECT_EQ(r->rows, (std::vector<std::vector<std::string>>{{"a", "X", "10", "1.5"},
                                                            {"d", "X", "20", "1.5"},
                                                            {"b", "Y", "7", "2.0"},
                                                            {"d", "Y", "9", "0.0"}}));
  top.by = "value";
  r = AggregateRows(header, {0}, "RATE/s", top, targets, rows);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows[0], (std::vector<std::string>{"b", "X", "30", "0.5"}));
  EXPECT_EQ(r->rows[2], (std::vector<std::string>{"d", "Y", "9", "0.0"}));
  EXPECT_EQ(r->rows[3], (std::vector<std::string>{"a", "Y", "7", "-"}));  // tie: list order
  Aggregate sum;
  sum.sum = true;
  r = AggregateRows(header, {0}, "RATE/s", sum, targets, rows);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows, (std::vector<std::vector<std::string>>{{"sum of 3", "X", "60", "3.5"},
                                                            {"sum of 3", "Y", "23", "2"}}));
  top.by = "NAME";
  r = AggregateRows(header, {0}, "RATE/s", top, targets, rows);
  EXPECT_EQ(r.status().message(), "--by: \"NAME\" is not a number column here (VALUE, RATE/s)");
  EXPECT_FALSE(AggregateRows({"STATUS"}, {}, "", sum, targets, rows).ok());
}

}  // namespace
}  // namespace netagent::client

namespace netagent::client {
namespace {

// A failed first answer does not fix a fleet table's widths; the first with
// rows does.
TEST(Printer, AFailedFirstTargetDoesNotFixTheWidths) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a"), T("b")}, Format::kTable, out, err);
  Printer p(c, CounterView());
  p.Failed(0, absl::UnavailableError("down"));
  EXPECT_EQ(out.str(), "");
  p.Answer(1, Counter("LongName", 12345));
  EXPECT_EQ(p.Finish(), 1);
  EXPECT_EQ(out.str(), "TARGET  NAME      VALUE\nb       LongName  12345\n");
}

// One target's stream that fails before a page arrived still shows its rows.
TEST(Printer, RowsBeforeAFailedStreamAreShown) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a")}, Format::kTable, out, err);
  Printer p(c, CounterView());
  for (int i = 0; i < 3; ++i) p.Part(0, Counter("N", i));
  p.Failed(0, absl::DeadlineExceededError("too slow"));
  EXPECT_EQ(p.Finish(), 1);
  EXPECT_EQ(out.str(), "NAME  VALUE\nN         0\nN         1\nN         2\n");
  EXPECT_EQ(err.str(), "netctl: DEADLINE_EXCEEDED: too slow\n");
}

// Blocks are separated in the order printed, whatever order they came in.
TEST(Printer, BlocksInTargetOrderAreSeparatedAsPrinted) {
  std::ostringstream out, err;
  CommandContext c = Context({T("a"), T("b"), T("c")}, Format::kTable, out, err);
  c.target_order = true;
  View view;
  view.block = [](const google::protobuf::Message& m, std::ostream& o) {
    o << static_cast<const netagent::v1::Counter&>(m).name() << "\n";
  };
  Printer p(c, view);
  p.Answer(2, Counter("C", 0));
  p.Answer(1, Counter("B", 0));
  p.Answer(0, Counter("A", 0));
  EXPECT_EQ(p.Finish(), 0);
  EXPECT_EQ(out.str(), "== a ==\nA\n\n== b ==\nB\n\n== c ==\nC\n");
}

// An agent that answers with more columns than asked for (a windowed reply
// to an unwindowed request) or fewer: rows are cut or filled to the header
// (it once read past the header's end and crashed netctl).
TEST(AggregateRows, RowsOfAnotherWidthAreFittedToTheHeader) {
  const std::vector<std::string> header = {"NAME", "VALUE"};
  std::vector<std::vector<std::vector<std::string>>> rows = {
      {{"X", "10", "2", "1.5%"}}, {{"X", "5", "3", "9%"}}, {{"X"}}};
  Aggregate sum;
  sum.sum = true;
  auto r = AggregateRows(header, {0}, "VALUE", sum, {"a", "b", "c"}, rows);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows, (std::vector<std::vector<std::string>>{{"sum of 3", "X", "15"}}));
  Aggregate top;
  top.top = 3;
  r = AggregateRows(header, {0}, "VALUE", top, {"a", "b", "c"}, rows);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows, (std::vector<std::vector<std::string>>{
                         {"a", "X", "10"}, {"b", "X", "5"}, {"c", "X", "-"}}));
}

TEST(AggregateRows, SumsAreExactAndPercentagesAreNotAdded) {
  Aggregate sum;
  sum.sum = true;
  auto r = AggregateRows({"FIELD", "VALUE", "FILL%"}, {0}, "VALUE", sum, {"a", "b", "c"},
                         {{{"bytes", "4000000000000001", "50.0"}},
                          {{"bytes", "4000000000000001", "20.0"}},
                          {{"bytes", "18446744073709551615", "-"}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows[0],
            (std::vector<std::string>{"sum of 3", "bytes", "18454744073709551617", "-"}));
}

// A view given another message than its own says so instead of reading it
// as the wrong type.
TEST(TypedView, RefusesAnotherMessage) {
  Rows rows;
  CounterView().rows(Counter("TcpExtListenOverflows", 3), rows);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "TcpExtListenOverflows");
  rows.clear();
  CounterView().rows(netagent::v1::GetHostInfoResponse(), rows);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0],
            "netctl: a netagent.v1.GetHostInfoResponse where a netagent.v1.Counter was expected "
            "(a netctl bug)");
  std::ostringstream out;
  TypedBlock<netagent::v1::GetHostInfoResponse>(
      [](const netagent::v1::GetHostInfoResponse& h, std::ostream& o) { o << h.hostname(); })(
      Counter("x", 1), out);
  EXPECT_EQ(out.str(),
            "netctl: a netagent.v1.Counter where a netagent.v1.GetHostInfoResponse was expected "
            "(a netctl bug)\n");
}

}  // namespace
}  // namespace netagent::client
