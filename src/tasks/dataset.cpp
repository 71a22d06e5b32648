// User data loaders (JSONL, CSV) and tokenized batches. Every bad line is an Error naming the
// file and the line, or, with LoadDataOptions::skip_bad, skipped and counted with its reason.
// Not here: the built-in generators (tasks.cpp), metrics (metrics.cpp).
#include "edgewise/tasks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgewise/error.h"

namespace edgewise {

using json = nlohmann::json;

Dataset Dataset::select_split(const std::string& which) const {
  Dataset out;
  out.name = name;
  out.description = description + " [split " + which + "]";
  for (const auto& e : examples)
    if (e.split.empty() || e.split == which) out.examples.push_back(e);
  return out;
}

Dataset Dataset::head(int64_t n) const {
  Dataset out = *this;
  if (n >= 0 && n < (int64_t)out.examples.size()) out.examples.resize(n);
  return out;
}

namespace {

std::string where(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

// Records a bad line: throws, or (skip_bad) counts it.
void bad_line(Dataset& ds, const LoadDataOptions& opt, const std::string& path, int64_t line,
              const std::string& what) {
  if (!opt.skip_bad) fail(where(path, line), what);
  ds.skipped++;
  ds.skip_notes.push_back(where(path, line) + ": " + what);
}

struct LineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
  while (!prompt->empty() && prompt->back() == ' ') {
    prompt->pop_back();
    *answer = " " + *answer;
  }
  if (answer->empty()) throw LineError(std::string("\"") + field + "\" has an empty <predict></predict>");
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
    if (s.empty()) throw LineError(std::string("\"") + key + "\" holds an empty answer");
  return out;
}

Example parse_json_example(const std::string& line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
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

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open the dataset file");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// One CSV record: fields and the line it starts on. RFC 4180: quoted fields may hold commas,
// newlines and doubled quotes.
struct CsvRecord {
  std::vector<std::string> fields;
  int64_t line = 0;
};

std::vector<CsvRecord> parse_csv(const std::string& path, const std::string& text) {
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
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument("");
    return (int32_t)v;
  } catch (const std::exception&) {
    throw LineError("column " + col + " must be a token id (a non-negative integer), found \"" + s + "\"");
  }
}

}  // namespace

Dataset load_jsonl(const std::string& path, const LoadDataOptions& opt) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open the dataset file");
  Dataset ds;
  ds.name = path;
  ds.description = "JSONL " + path;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    try {
      Example ex = parse_json_example(line);
      ex.line = n;
      ds.examples.push_back(std::move(ex));
    } catch (const LineError& e) {
      bad_line(ds, opt, path, n, e.what());
    }
  }
  if (ds.examples.empty()) fail(path, "no usable examples (" + std::to_string(ds.skipped) + " bad lines skipped)");
  return ds;
}

Dataset load_csv(const std::string& path, const LoadDataOptions& opt) {
  const auto records = parse_csv(path, read_file(path));
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
  Dataset ds;
  ds.name = path;
  ds.description = "CSV " + path;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    try {
      if (rec.fields.size() != records[0].fields.size())
        throw LineError("expected " + std::to_string(records[0].fields.size()) + " fields (as the header), found " +
                        std::to_string(rec.fields.size()));
      auto get = [&](const char* k) { return col.count(k) ? rec.fields[col.at(k)] : std::string(); };
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
        if (c.empty()) throw LineError("empty answer in column " + std::string(col.count("correct") ? "correct" : "label"));
        ex.correct = {c};
        if (col.count("incorrect") && !get("incorrect").empty()) ex.incorrect = {get("incorrect")};
      }
      ex.split = get("split");
      check_split(ex.split);
      ds.examples.push_back(std::move(ex));
    } catch (const LineError& e) {
      bad_line(ds, opt, path, rec.line, e.what());
    }
  }
  if (ds.examples.empty()) fail(path, "no usable examples (" + std::to_string(ds.skipped) + " bad lines skipped)");
  return ds;
}

Dataset load_dataset(const std::string& path, const LoadDataOptions& opt) {
  auto ends = [&](const std::string& e) {
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".jsonl") || ends(".json")) return load_jsonl(path, opt);
  if (ends(".csv")) return load_csv(path, opt);
  fail(path, "unknown dataset format: expected a .jsonl, .json or .csv file");
}

// ---- batches ----

Batch make_batch(const Dataset& ds, const Tokenizer& tok, const BatchOptions& opt) {
  const int64_t N = ds.examples.size();
  if (N == 0) fail("dataset " + ds.name, "no examples");
  auto name_of = [&](int64_t i) {
    std::string s = "dataset " + ds.name + ", example " + std::to_string(i);
    if (ds.examples[i].line > 0) s += " (line " + std::to_string(ds.examples[i].line) + ")";
    return s;
  };
  Batch b;
  b.pad_id = opt.pad_id >= 0 ? opt.pad_id : tok.eos_id().value_or(0);
  std::vector<std::vector<int32_t>> cl(N), co(N), ans_c(N), ans_i(N);
  b.aligned = true;
  for (int64_t i = 0; i < N; ++i) {
    const Example& ex = ds.examples[i];
    cl[i] = tok.encode_for_model(ex.clean);
    co[i] = tok.encode_for_model(ex.corrupted);
    if (cl[i].empty() || co[i].empty()) fail(name_of(i), "empty prompt after tokenization");
    if (cl[i].size() != co[i].size()) {
      if (opt.require_aligned)
        fail(name_of(i), "clean and corrupted prompts must have equal token counts for this method; found " +
                             std::to_string(cl[i].size()) + " clean vs " + std::to_string(co[i].size()) +
                             " corrupted tokens");
      b.aligned = false;
    }
    auto answers = [&](const std::vector<std::string>& texts, const std::vector<int32_t>& ids,
                       std::vector<int32_t>& out, const char* what) {
      if (!ids.empty()) {
        for (int32_t id : ids)
          if (id >= tok.vocab_size())
            fail(name_of(i), std::string(what) + " answer token id " + std::to_string(id) +
                                 " is outside the vocabulary (" + std::to_string(tok.vocab_size()) + ")");
        out = ids;
        return;
      }
      for (const auto& t : texts) {
        auto e = tok.encode(t);
        if (e.empty()) fail(name_of(i), std::string(what) + " answer \"" + t + "\" has no tokens");
        if (e.size() > 1) b.multi_token_answers++;
        out.push_back(e[0]);  // rule: the first token of the answer
      }
    };
    answers(ex.correct, ex.correct_ids, ans_c[i], "correct");
    answers(ex.incorrect, ex.incorrect_ids, ans_i[i], "incorrect");
    if (ans_c[i].empty()) fail(name_of(i), "no correct answer");
    b.lines.push_back(ex.line);
  }
  int64_t T = 0, Ac = 1, Ai = 1;
  for (int64_t i = 0; i < N; ++i) {
    T = std::max<int64_t>({T, (int64_t)cl[i].size(), (int64_t)co[i].size()});
    Ac = std::max<int64_t>(Ac, ans_c[i].size());
    Ai = std::max<int64_t>(Ai, ans_i[i].size());
  }
  b.clean = at::full({N, T}, b.pad_id, at::kLong);
  b.corrupted = at::full({N, T}, b.pad_id, at::kLong);
  b.clean_len = at::empty({N}, at::kLong);
  b.corrupted_len = at::empty({N}, at::kLong);
  b.correct = at::zeros({N, Ac}, at::kLong);
  b.incorrect = at::zeros({N, Ai}, at::kLong);
  b.correct_mask = at::zeros({N, Ac}, at::kFloat);
  b.incorrect_mask = at::zeros({N, Ai}, at::kFloat);
  auto pc = b.clean.accessor<int64_t, 2>(), pk = b.corrupted.accessor<int64_t, 2>();
  auto ac = b.correct.accessor<int64_t, 2>(), ai = b.incorrect.accessor<int64_t, 2>();
  auto mc = b.correct_mask.accessor<float, 2>(), mi = b.incorrect_mask.accessor<float, 2>();
  for (int64_t i = 0; i < N; ++i) {
    for (size_t t = 0; t < cl[i].size(); ++t) pc[i][t] = cl[i][t];
    for (size_t t = 0; t < co[i].size(); ++t) pk[i][t] = co[i][t];
    b.clean_len[i] = (int64_t)cl[i].size();
    b.corrupted_len[i] = (int64_t)co[i].size();
    for (size_t a = 0; a < ans_c[i].size(); ++a) ac[i][a] = ans_c[i][a], mc[i][a] = 1.f;
    for (size_t a = 0; a < ans_i[i].size(); ++a) ai[i][a] = ans_i[i][a], mi[i][a] = 1.f;
  }
  b.clean_pos = b.clean_len - 1;
  b.corrupted_pos = b.corrupted_len - 1;
  return b;
}

Batch Batch::rows(int64_t from, int64_t to) const {
  if (from < 0 || to > size() || from > to)
    fail("batch", "rows [" + std::to_string(from) + ", " + std::to_string(to) + ") outside [0, " +
                      std::to_string(size()) + ")");
  Batch b = *this;
  for (at::Tensor* t : {&b.clean, &b.corrupted, &b.clean_len, &b.corrupted_len, &b.clean_pos, &b.corrupted_pos,
                        &b.correct, &b.incorrect, &b.correct_mask, &b.incorrect_mask})
    if (t->defined()) *t = t->narrow(0, from, to - from);
  const auto at = [&](int64_t i) { return lines.begin() + std::min<int64_t>(i, static_cast<int64_t>(lines.size())); };
  b.lines.assign(at(from), at(to));
  return b;
}

Batch Batch::select(const at::Tensor& index) const {
  at::Tensor idx = index.to(at::kLong).flatten().contiguous();
  if (idx.numel() > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= size()))
    fail("batch", "row index outside [0, " + std::to_string(size()) + ")");
  Batch b = *this;
  for (at::Tensor* t : {&b.clean, &b.corrupted, &b.clean_len, &b.corrupted_len, &b.clean_pos, &b.corrupted_pos,
                        &b.correct, &b.incorrect, &b.correct_mask, &b.incorrect_mask})
    if (t->defined()) *t = t->index_select(0, idx);
  b.lines.clear();
  if (static_cast<int64_t>(lines.size()) == size()) {
    const int64_t* p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) b.lines.push_back(lines[p[i]]);
  }
  return b;
}

// ---- what a run reads ----

Dataset load_task(const std::string& task, const Tokenizer& tok, int64_t n, uint64_t seed) {
  namespace fs = std::filesystem;
  // One check for built-in tasks and files alike (a file once took every example for -n -5).
  if (n <= 0) fail("task " + task, "number of examples must be positive, got " + std::to_string(n));
  // A built-in task's name wins over a file or folder of the same name in the working
  // directory (a folder called "docstring" next to the run once made --task docstring fail);
  // "./name" reads such a file.
  const auto& names = task_names();
  const bool builtin = std::find(names.begin(), names.end(), task) != names.end();
  const bool pathlike = task.find('.') != std::string::npos || task.find('/') != std::string::npos;
  if (pathlike || (!builtin && fs::exists(task))) return load_dataset(task).head(n);
  TaskOptions o;
  o.n = n;
  o.seed = seed;
  return make_task(task, tok, o);
}

TrainValidation split_train_validation(const Dataset& ds, double fraction, int64_t min_validation) {
  TrainValidation r;
  r.from_file = std::any_of(ds.examples.begin(), ds.examples.end(), [](const Example& e) { return !e.split.empty(); });
  if (r.from_file) {
    r.train = ds.select_split("train");
    r.validation = ds.select_split("validation");
  } else {
    const int64_t n = static_cast<int64_t>(ds.examples.size());
    const int64_t n_val = std::max<int64_t>(min_validation, std::min<int64_t>(n - 1, std::llround(fraction * n)));
    r.train = ds, r.validation = ds;
    r.train.examples.assign(ds.examples.begin(), ds.examples.end() - n_val);
    r.validation.examples.assign(ds.examples.end() - n_val, ds.examples.end());
  }
  if (r.train.examples.empty()) fail(ds.name, "no training examples");
  return r;
}

TaskBatch task_batch(const Tokenizer& tok, const std::string& task, int64_t n, uint64_t seed, bool aligned) {
  TaskBatch t;
  t.dataset = load_task(task, tok, n, seed);
  BatchOptions bo;
  bo.require_aligned = aligned;
  t.batch = make_batch(t.dataset, tok, bo);
  return t;
}

}  // namespace edgewise
