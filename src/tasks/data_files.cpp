// Dataset files as text (JSONL, CSV) and the answer checks: every bad line or example is
// collected and reported in one Error naming the file and line, or, with
// LoadDataOptions::skip_bad, skipped and counted with its reason. Torch-free (edgewise_core).
// Not here: tokenized batches and what a run reads (dataset.cpp), the built-in generators.
#include "edgewise/dataset.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "edgewise/error.h"
#include "edgewise/tokenizer.h"
#include "../util/unicode.h"

namespace edgewise {

using json = nlohmann::json;

Dataset Dataset::select_split(const std::string& which) const {
  Dataset out = *this;
  out.description = description + " [split " + which + "]";
  out.examples.clear();
  for (const auto& e : examples)
    if (e.split.empty() || e.split == which) out.examples.push_back(e);
  return out;
}

Dataset Dataset::head(int64_t n) const {
  Dataset out = *this;
  if (n >= 0 && n < (int64_t)out.examples.size()) out.examples.resize(n);
  return out;
}

std::string Dataset::where(size_t i) const {
  const int64_t line = i < examples.size() ? examples[i].line : 0;
  if (line > 0) return name + ":" + std::to_string(line);
  return "task " + name + ", example " + std::to_string(i);
}

namespace {

std::string where(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

struct LineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bad lines (or examples) as they are found: the line (0 for generated examples) and the note
// "file:12: why". A reader collects them all; finish() then reports them in one Error or, with
// skip_bad, counts them in the dataset.
using BadNotes = std::vector<std::pair<int64_t, std::string>>;

// `records`: the lines or examples read (0: an empty file). `unit` names them in messages.
void finish(Dataset& ds, BadNotes bad, const LoadDataOptions& opt, const char* unit, int64_t records) {
  std::stable_sort(bad.begin(), bad.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  if (!bad.empty() && !opt.skip_bad) {
    if (bad.size() == 1) throw Error(bad[0].second);
    constexpr size_t kShown = 20;
    std::string msg = ds.name + ": " + std::to_string(bad.size()) + " bad " + unit +
                      "s (fix them, or skip them with --skip-bad-lines):";
    for (size_t i = 0; i < std::min(bad.size(), kShown); ++i) msg += "\n  " + bad[i].second;
    if (bad.size() > kShown) msg += "\n  ... and " + std::to_string(bad.size() - kShown) + " more";
    throw Error(msg);
  }
  ds.skipped += static_cast<int64_t>(bad.size());
  for (auto& b : bad) ds.skip_notes.push_back(std::move(b.second));
  if (!ds.examples.empty()) return;
  if (records == 0) fail(ds.name, "the file has no examples (it is empty or holds only blank lines)");
  fail(ds.name, "no usable examples: all " + std::to_string(ds.skipped) + " " + unit + "s were bad and skipped");
}

bool only_spaces(const std::string& s) { return s.find_first_not_of(' ') == std::string::npos; }

// s as a JSON string for messages; bytes that are not UTF-8 (a token holding part of a character)
// show as U+FFFD instead of making nlohmann throw.
std::string quote(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

void check_split(const std::string& s) {
  if (!s.empty() && s != "train" && s != "validation")
    throw LineError("split must be \"train\" or \"validation\", found \"" + s + "\"");
}

// Splits "prompt<predict>answer</predict>rest" into prompt and answer. Spaces at the end of the
// prompt move into the answer ("to <predict>Mary</predict>" -> "to" + " Mary"), so the answer is
// the continuation a tokenizer sees. Returns false when there is no <predict>.
bool split_predict(const std::string& text, const char* field, std::string* prompt, std::string* answer) {
  const size_t a = text.find("<predict>");
  if (a == std::string::npos) {
    if (text.find("</predict>") != std::string::npos)
      throw LineError(std::string("\"") + field + "\" has </predict> without <predict>");
    return false;
  }
  const size_t b = text.find("</predict>", a);
  if (b == std::string::npos) throw LineError(std::string("\"") + field + "\" has <predict> without </predict>");
  *prompt = text.substr(0, a);
  *answer = text.substr(a + 9, b - a - 9);
  if (only_spaces(*answer))
    throw LineError(std::string("\"") + field + "\" has an empty answer in <predict></predict>");
  if (!prompt->empty() && prompt->back() == ' ' && answer->front() == ' ')
    throw LineError(std::string("\"") + field +
                    "\" has a space before <predict> and another inside it, so the answer would begin with two "
                    "spaces (a bare space token); keep one: \"is <predict>Paris</predict>\" or \"is<predict> "
                    "Paris</predict>\"");
  while (!prompt->empty() && prompt->back() == ' ') {
    prompt->pop_back();
    *answer = " " + *answer;
  }
  return true;
}

std::vector<std::string> string_or_list(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_array()) {
    for (const auto& x : j) {
      if (!x.is_string()) throw LineError(std::string("\"") + key + "\" must hold strings, found " + x.dump());
      out.push_back(x.get<std::string>());
    }
  } else {
    throw LineError(std::string("\"") + key + "\" must be a string or a list of strings, found " + j.dump());
  }
  for (const auto& s : out)
    if (only_spaces(s)) throw LineError(std::string("\"") + key + "\" holds an empty answer");
  return out;
}

Example parse_json_example(const std::string& line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 4e454
    throw LineError(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw LineError("expected a JSON object, found " + std::string(j.type_name()));
  for (const char* k : {"clean", "corrupted"})
    if (!j.contains(k) || !j[k].is_string()) throw LineError(std::string("missing string field \"") + k + "\"");
  Example ex;
  std::string clean_answer, corrupted_answer;
  const bool cp = split_predict(j["clean"].get<std::string>(), "clean", &ex.clean, &clean_answer);
  if (!cp) ex.clean = j["clean"].get<std::string>();
  const bool kp = split_predict(j["corrupted"].get<std::string>(), "corrupted", &ex.corrupted, &corrupted_answer);
  if (!kp) ex.corrupted = j["corrupted"].get<std::string>();
  if (j.contains("correct")) {
    if (cp) throw LineError("give the answer either as <predict> in \"clean\" or as \"correct\", not both");
    ex.correct = string_or_list(j["correct"], "correct");
    if (ex.correct.empty()) throw LineError("\"correct\" is an empty list");
  } else if (cp) {
    ex.correct = {clean_answer};
  } else {
    throw LineError("no answer: mark it in \"clean\" with <predict>...</predict> or give \"correct\"");
  }
  if (j.contains("incorrect")) {
    ex.incorrect = string_or_list(j["incorrect"], "incorrect");
  } else if (kp && corrupted_answer != ex.correct[0]) {
    ex.incorrect = {corrupted_answer};  // the corrupted prompt's <predict> is the clean run's wrong answer
  }
  if (j.contains("split")) {
    if (!j["split"].is_string()) throw LineError("\"split\" must be a string");
    ex.split = j["split"].get<std::string>();
    check_split(ex.split);
  }
  if (ex.clean.empty() || ex.corrupted.empty()) throw LineError("empty prompt");
  return ex;
}

std::string read_text(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path, "is a folder; expected a dataset file (.jsonl, .json or .csv)");
  if (!fs::exists(path, ec)) fail(path, "no such dataset file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open the dataset file");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, "read error");
  return ss.str();
}

// One CSV record: fields and the line it starts on. RFC 4180: quoted fields may hold commas,
// newlines and doubled quotes.
struct CsvRecord {
  std::vector<std::string> fields;
  int64_t line = 0;
};

std::vector<CsvRecord> csv_records(const std::string& path, const std::string& text) {
  std::vector<CsvRecord> out;
  size_t i = 0;
  int64_t line = 1;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  while (i < text.size()) {
    CsvRecord r;
    r.line = line;
    std::string field;
    bool done = false;
    while (!done) {
      if (i < text.size() && text[i] == '"') {
        const int64_t open_line = line;
        ++i;
        while (true) {
          if (i >= text.size()) fail(where(path, open_line), "quoted field is not closed before the end of the file");
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          fail(where(path, line), "unexpected character after a closing quote");
      }
      while (i < text.size() && text[i] != ',' && text[i] != '\n') field += text[i++];
      if (!field.empty() && field.back() == '\r' && (i >= text.size() || text[i] == '\n')) field.pop_back();
      r.fields.push_back(std::move(field));
      field.clear();
      if (i >= text.size()) {
        done = true;
      } else if (text[i] == ',') {
        ++i;
      } else {  // '\n'
        ++i;
        ++line;
        done = true;
      }
    }
    if (!(r.fields.size() == 1 && r.fields[0].empty())) out.push_back(std::move(r));  // blank line
  }
  return out;
}

int32_t parse_token_id(const std::string& s, const std::string& col) {
  const std::optional<int64_t> v = parse_integer(s, 0, INT32_MAX);
  if (!v) throw LineError("column " + col + " must be a token id (a non-negative integer), found \"" + s + "\"");
  return static_cast<int32_t>(*v);
}

// A file read: its examples, its bad lines, how many records it had.
struct Read {
  Dataset ds;
  BadNotes bad;
  int64_t records = 0;
};

Read read_jsonl(const std::string& path, const std::string& text) {
  Read r;
  r.ds.name = path;
  r.ds.description = "JSONL " + path;
  std::istringstream in(text);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    ++r.records;
    try {
      Example ex = parse_json_example(line);
      ex.line = n;
      r.ds.examples.push_back(std::move(ex));
    } catch (const LineError& e) {
      r.bad.push_back({n, where(path, n) + ": " + e.what()});
    }
  }
  return r;
}

Read read_csv(const std::string& path, const std::string& text) {
  const auto records = csv_records(path, text);
  if (records.empty()) fail(path, "empty CSV file (expected a header with clean, corrupted, ...)");
  std::map<std::string, size_t> col;
  for (size_t c = 0; c < records[0].fields.size(); ++c) col[records[0].fields[c]] = c;
  for (const char* k : {"clean", "corrupted"})
    if (!col.count(k)) fail(where(path, 1), std::string("the header has no column \"") + k + "\"");
  const bool text_answers = col.count("correct") || col.count("label");
  const bool id_answers = col.count("correct_idx");
  if (!text_answers && !id_answers)
    fail(where(path, 1), "the header names no answer column: expected correct (and incorrect), label, or "
                         "correct_idx (and incorrect_idx)");
  Read r;
  r.ds.name = path;
  r.ds.description = "CSV " + path;
  r.records = static_cast<int64_t>(records.size()) - 1;
  for (size_t k = 1; k < records.size(); ++k) {
    const auto& rec = records[k];
    try {
      if (rec.fields.size() != records[0].fields.size())
        throw LineError("expected " + std::to_string(records[0].fields.size()) + " fields (as the header), found " +
                        std::to_string(rec.fields.size()));
      // As JSON (where the parser refuses it), text must be UTF-8: other encodings would be
      // tokenized as bytes the model never saw.
      for (size_t c = 0; c < rec.fields.size(); ++c)
        if (const size_t at = unicode::utf8_invalid_at(rec.fields[c]); at != std::string::npos) {
          char byte[8];
          std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(rec.fields[c][at])));
          throw LineError("column " + records[0].fields[c] + " is not valid UTF-8 (byte " + byte + " at offset " +
                          std::to_string(at) + " of the field): save the file as UTF-8");
        }
      auto get = [&](const char* c) { return col.count(c) ? rec.fields[col.at(c)] : std::string(); };
      Example ex;
      ex.line = rec.line;
      ex.clean = get("clean");
      ex.corrupted = get("corrupted");
      if (ex.clean.empty() || ex.corrupted.empty()) throw LineError("empty clean or corrupted prompt");
      if (id_answers) {
        ex.correct_ids = {parse_token_id(get("correct_idx"), "correct_idx")};
        if (col.count("incorrect_idx")) ex.incorrect_ids = {parse_token_id(get("incorrect_idx"), "incorrect_idx")};
      } else {
        const std::string c = col.count("correct") ? get("correct") : get("label");
        if (only_spaces(c))
          throw LineError("empty answer in column " + std::string(col.count("correct") ? "correct" : "label"));
        ex.correct = {c};
        if (col.count("incorrect") && !get("incorrect").empty()) ex.incorrect = {get("incorrect")};
      }
      ex.split = get("split");
      check_split(ex.split);
      r.ds.examples.push_back(std::move(ex));
    } catch (const LineError& e) {
      r.bad.push_back({rec.line, where(path, rec.line) + ": " + e.what()});
    }
  }
  return r;
}

Read read_by_extension(const std::string& path) {
  auto ends = [&](const std::string& e) {
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail(path, "is a folder; expected a dataset file (.jsonl, .json or .csv)");
  if (ends(".jsonl") || ends(".json")) return read_jsonl(path, read_text(path));
  if (ends(".csv")) return read_csv(path, read_text(path));
  fail(path, "unknown dataset format: expected a .jsonl, .json or .csv file");
}

// The answer checks of check_answers: bad examples leave `ds` and join `bad`.
void check_answers_into(Dataset& ds, const Tokenizer& tok, BadNotes& bad) {
  const int32_t V = tok.n_outputs();
  const std::vector<std::string>& labels = tok.output_labels();  // a model's own output space (Tracr)
  auto shown = [&](int32_t id) {
    return labels.empty() ? "token " + std::to_string(id) + " " + quote(tok.token_text(id))
                          : "output " + std::to_string(id) + " " + quote(labels[id]);
  };
  std::vector<Example> kept;
  for (size_t i = 0; i < ds.examples.size(); ++i) {
    const Example& ex = ds.examples[i];
    try {
      // The first token of each answer, with the answer as written (for messages).
      auto firsts = [&](const std::vector<std::string>& texts, const std::vector<int32_t>& ids, const char* what) {
        std::vector<std::pair<int32_t, std::string>> out;
        if (!ids.empty()) {
          for (int32_t id : ids) {
            if (id < 0 || id >= V)
              throw LineError(std::string(what) + " answer id " + std::to_string(id) + " is outside the " +
                              (labels.empty() ? "tokenizer's vocabulary" : "model's outputs") + " (ids 0.." +
                              std::to_string(V - 1) + ")");
            out.push_back({id, "id " + std::to_string(id)});
          }
          return out;
        }
        for (const std::string& t : texts) {
          const std::string quoted = quote(t);
          if (only_spaces(t)) throw LineError(std::string(what) + " answer " + quoted + " is empty");
          if (!labels.empty()) {
            const std::optional<int32_t> id = tok.answer_id(t);
            if (!id) {
              std::string known;
              for (const std::string& l : labels) known += (known.empty() ? "" : ", ") + quote(l);
              throw LineError(std::string(what) + " answer " + quoted + " is not one of the model's outputs (" + known + ")");
            }
            out.push_back({*id, quoted});
            continue;
          }
          const std::vector<int32_t> e = tok.encode_continuation(t);
          if (e.empty()) throw LineError(std::string(what) + " answer " + quoted + " has no tokens");
          if (e.size() > 1) {
            const std::string first = tok.token_text(e[0]);
            if (!first.empty() && only_spaces(first))
              throw LineError(std::string(what) + " answer " + quoted + " begins with " + shown(e[0]) +
                              ", only spaces: the metrics would score that token, not the word (two spaces "
                              "where one was meant?)");
          }
          out.push_back({e[0], quoted});
        }
        return out;
      };
      const auto c = firsts(ex.correct, ex.correct_ids, "correct");
      const auto w = firsts(ex.incorrect, ex.incorrect_ids, "incorrect");
      if (c.empty()) throw LineError("no correct answer");
      for (const auto& [ci, ct] : c)
        for (const auto& [wi, wt] : w)
          if (ci == wi)
            throw LineError("correct answer " + ct + " and incorrect answer " + wt + " both begin with " + shown(ci) +
                            ": the metrics compare first tokens and cannot tell them apart");
      kept.push_back(ex);
    } catch (const LineError& e) {
      bad.push_back({ex.line, ds.where(i) + ": " + e.what()});
    }
  }
  ds.examples = std::move(kept);
}

// The multi-token answers of `ds`, as one warning line (none when there are none).
void note_multi_token_answers(Dataset& ds, const Tokenizer& tok) {
  if (!tok.output_labels().empty()) return;  // answers are output labels, one id each
  std::vector<std::string> places;
  int64_t answers = 0;
  for (size_t i = 0; i < ds.examples.size(); ++i) {
    const Example& ex = ds.examples[i];
    int64_t n = 0;
    if (ex.correct_ids.empty())
      for (const std::string& t : ex.correct) n += tok.encode_continuation(t).size() > 1;
    if (ex.incorrect_ids.empty())
      for (const std::string& t : ex.incorrect) n += tok.encode_continuation(t).size() > 1;
    if (n > 0) answers += n, places.push_back(ds.where(i));
  }
  if (places.empty()) return;
  std::string shown;
  for (size_t k = 0; k < std::min<size_t>(places.size(), 3); ++k) shown += (k ? ", " : "") + places[k];
  if (places.size() > 3) shown += ", ...";
  ds.warnings.push_back(std::to_string(places.size()) + " of " + std::to_string(ds.examples.size()) +
                        " examples have answers of several tokens (" + std::to_string(answers) + " answers; " + shown +
                        "): the metrics use the first token of each answer");
}

}  // namespace

Dataset parse_jsonl(const std::string& path, const std::string& text, const LoadDataOptions& opt) {
  Read r = read_jsonl(path, text);
  finish(r.ds, std::move(r.bad), opt, "line", r.records);
  return r.ds;
}

Dataset parse_csv(const std::string& path, const std::string& text, const LoadDataOptions& opt) {
  Read r = read_csv(path, text);
  finish(r.ds, std::move(r.bad), opt, "line", r.records);
  return r.ds;
}

Dataset load_jsonl(const std::string& path, const LoadDataOptions& opt) {
  return parse_jsonl(path, read_text(path), opt);
}

Dataset load_csv(const std::string& path, const LoadDataOptions& opt) { return parse_csv(path, read_text(path), opt); }

Dataset load_dataset(const std::string& path, const LoadDataOptions& opt) {
  Read r = read_by_extension(path);
  finish(r.ds, std::move(r.bad), opt, "line", r.records);
  return r.ds;
}

void check_answers(Dataset& ds, const Tokenizer& tok, const LoadDataOptions& opt) {
  BadNotes bad;
  const int64_t n = static_cast<int64_t>(ds.examples.size());
  check_answers_into(ds, tok, bad);
  finish(ds, std::move(bad), opt, "example", n);
  ds.warnings.clear();
  note_multi_token_answers(ds, tok);
}

Dataset load_dataset_checked(const std::string& path, const Tokenizer& tok, int64_t n, const LoadDataOptions& opt) {
  Read r = read_by_extension(path);
  check_answers_into(r.ds, tok, r.bad);  // one report for the lines and the answers
  finish(r.ds, std::move(r.bad), opt, "line", r.records);
  Dataset ds = r.ds.head(n);
  note_multi_token_answers(ds, tok);
  return ds;
}

}  // namespace edgewise
