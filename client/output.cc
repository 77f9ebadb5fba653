#include "client/output.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdint>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace netagent::client {
namespace {

bool Numeric(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+';
  });
}

// A JSON string literal. Protobuf refuses text that is not UTF-8 (a target
// name typed in another encoding): such bytes become '?'.
std::string JsonString(const std::string& s) {
  google::protobuf::Value v;
  v.set_string_value(s);
  if (!google::protobuf::internal::IsStructurallyValidUTF8(s)) {
    std::string ascii = s;
    for (char& c : ascii) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
    v.set_string_value(ascii);
  }
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

// One UTF-8 sequence at `pos`: its code point and length, or length 0 when
// the bytes there are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF).
struct Decoded {
  uint32_t cp = 0;
  size_t len = 0;
};

Decoded DecodeAt(absl::string_view s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len;
  uint32_t cp, min;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (s.size() - pos < len) return {};
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {};
  return {cp, len};
}

bool IsControl(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

std::vector<std::string> TerminalCells(std::vector<std::string> cells) {
  for (std::string& c : cells) c = TerminalText(c);
  return cells;
}

}  // namespace

std::string TerminalText(absl::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Decoded d = DecodeAt(text, pos);
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

Table::Table(std::vector<std::string> header) : header_(TerminalCells(std::move(header))) {}

void Table::AddRow(std::vector<std::string> cells) {
  rows_.push_back(Row{TerminalCells(std::move(cells)), "", false});
}

void Table::AddNote(std::vector<std::string> lead, std::string text) {
  rows_.push_back(Row{TerminalCells(std::move(lead)), TerminalText(text), true});
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> width(header_.size());
  std::vector<bool> right(header_.size(), true);
  for (size_t i = 0; i < header_.size(); ++i) width[i] = header_[i].size();
  for (const Row& r : rows_) {
    for (size_t i = 0; i < r.cells.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r.cells[i].size());
      if (!r.is_note && !Numeric(r.cells[i])) right[i] = false;
    }
  }
  auto line = [&](const std::vector<std::string>& cells, const std::string* note) {
    std::string s;
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      const bool last = note == nullptr && i + 1 == cells.size();
      std::string cell = cells[i];
      if (right[i] && note == nullptr) {
        s += std::string(width[i] - cell.size(), ' ') + cell;
      } else {
        s += cell;
        if (!last) s += std::string(width[i] - cell.size(), ' ');
      }
      if (!last) s += "  ";
    }
    if (note != nullptr) s += *note;
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  line(header_, nullptr);
  for (const Row& r : rows_) line(r.cells, r.is_note ? &r.note : nullptr);
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

std::string JsonLine(const Target& target, const absl::Status& status,
                     const google::protobuf::Message* result) {
  std::string out = absl::StrCat("{\"target\":", JsonString(target.display),
                                 ",\"ok\":", status.ok() ? "true" : "false", ",\"error\":");
  if (status.ok()) {
    out += "null";
  } else {
    absl::StrAppend(&out, "{\"code\":", JsonString(StatusCodeName(status.code())),
                    ",\"message\":", JsonString(std::string(status.message())), "}");
  }
  out += ",\"result\":";
  if (result != nullptr) {
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    std::string json;
    if (google::protobuf::util::MessageToJsonString(*result, &json, options).ok()) {
      out += json;
    } else {
      out += "null";
    }
  } else {
    out += "null";
  }
  out += "}";
  return out;
}

int PrintOutcomes(const std::vector<Target>& targets, const std::vector<Outcome>& outcomes,
                  Format format, const View& view, bool label_targets, std::ostream& out,
                  std::ostream& err) {
  const bool multi = label_targets || targets.size() > 1;
  int failed = 0;
  for (const Outcome& o : outcomes) failed += o.status.ok() ? 0 : 1;
  if (format == Format::kJson) {
    for (size_t i = 0; i < targets.size(); ++i) {
      out << JsonLine(targets[i], outcomes[i].status, outcomes[i].result.get()) << "\n";
    }
  } else if (view.block) {
    for (size_t i = 0; i < targets.size(); ++i) {
      if (multi) out << (i ? "\n" : "") << "== " << TerminalText(targets[i].display) << " ==\n";
      if (outcomes[i].status.ok()) {
        std::ostringstream block;
        view.block(*outcomes[i].result, block);
        out << TerminalText(block.str(), /*keep_newlines=*/true);
      } else if (multi) {
        out << "error: " << DescribeError(outcomes[i].status) << "\n";
      } else {
        err << "netctl: " << DescribeError(outcomes[i].status) << "\n";
      }
    }
  } else {
    std::vector<std::string> header = view.header;
    if (multi) header.insert(header.begin(), "TARGET");
    Table table(header);
    for (size_t i = 0; i < targets.size(); ++i) {
      if (!outcomes[i].status.ok()) {
        if (multi) {
          table.AddNote({targets[i].display}, "error: " + DescribeError(outcomes[i].status));
        } else {
          err << "netctl: " << DescribeError(outcomes[i].status) << "\n";
        }
        continue;
      }
      std::vector<std::vector<std::string>> rows;
      view.rows(*outcomes[i].result, rows);
      for (auto& r : rows) {
        if (multi) r.insert(r.begin(), targets[i].display);
        table.AddRow(std::move(r));
      }
    }
    if (multi || !table.empty() || failed == 0) table.Render(out);
  }
  if (failed > 0 && targets.size() > 1) {
    err << "netctl: " << failed << " of " << targets.size() << " targets failed:\n";
    // Named with their error (the data went to stdout, maybe a pipe).
    constexpr size_t kNamed = 20;
    size_t named = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      if (outcomes[i].status.ok()) continue;
      if (named++ == kNamed) {
        err << "  ... and " << static_cast<size_t>(failed) - kNamed << " more\n";
        break;
      }
      err << "  " << TerminalText(targets[i].display) << ": "
          << TerminalText(DescribeError(outcomes[i].status)) << "\n";
    }
  }
  return failed > 0 ? 1 : 0;
}

std::string Num(uint64_t v) { return absl::StrCat(v); }
std::string SignedNum(int64_t v) { return absl::StrCat(v); }
std::string Rate(double per_second) { return absl::StrFormat("%.1f", per_second); }

std::string EnumSuffix(const std::string& name, absl::string_view prefix, int number) {
  absl::string_view n = name;
  if (!absl::ConsumePrefix(&n, prefix) || n.empty()) return absl::StrCat(number);
  return std::string(n);
}

}  // namespace netagent::client
