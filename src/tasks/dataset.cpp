// Tokenized batches and what a run reads (a task by name or file, its split, its batch).
// Not here: the file readers and answer checks (data_files.cpp, torch-free), the built-in
// generators (tasks.cpp), metrics (metrics.cpp).
#include "edgewise/tasks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "edgewise/error.h"

namespace edgewise {

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
          if (id < 0 || id >= tok.n_outputs())
            fail(name_of(i), std::string(what) + " answer id " + std::to_string(id) + " is outside the " +
                                 (tok.output_labels().empty() ? "vocabulary" : "model's outputs") + " (" +
                                 std::to_string(tok.n_outputs()) + ")");
        out = ids;
        return;
      }
      for (const auto& t : texts) {
        if (!tok.output_labels().empty()) {  // the model's own output space (Tracr): labels, not tokens
          const std::optional<int32_t> id = tok.answer_id(t);
          if (!id) fail(name_of(i), std::string(what) + " answer \"" + t + "\" is not one of the model's outputs");
          out.push_back(*id);
          continue;
        }
        auto e = tok.encode_continuation(t);
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
  for (int64_t i = 0; i < N; ++i) {
    const int64_t p = ds.examples[i].position;
    if (p < 0) continue;
    if (p >= static_cast<int64_t>(cl[i].size()) || p >= static_cast<int64_t>(co[i].size()))
      fail(name_of(i), "prediction position " + std::to_string(p) + " is beyond the prompt (" +
                           std::to_string(std::min(cl[i].size(), co[i].size())) + " tokens)");
    b.clean_pos[i] = p;
    b.corrupted_pos[i] = p;
  }
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

Dataset load_task(const std::string& task, const Tokenizer& tok, int64_t n, uint64_t seed,
                  const LoadDataOptions& opt) {
  namespace fs = std::filesystem;
  // One check for built-in tasks and files alike (a file once took every example for -n -5).
  if (n <= 0) fail("task " + task, "number of examples must be positive, got " + std::to_string(n));
  // A built-in task's name wins over a file or folder of the same name in the working
  // directory (a folder called "docstring" next to the run once made --task docstring fail);
  // "./name" reads such a file.
  const bool builtin = is_builtin_task(task);
  const bool pathlike = task.find('.') != std::string::npos || task.find('/') != std::string::npos;
  Dataset ds;
  if (pathlike || (!builtin && fs::exists(task))) {
    ds = load_dataset_checked(task, tok, n, opt);
  } else {
    TaskOptions o;
    o.n = n;
    o.seed = seed;
    ds = make_task(task, tok, o);
    check_answers(ds, tok, opt);
  }
  return ds;
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

TaskBatch task_batch(const Tokenizer& tok, const std::string& task, int64_t n, uint64_t seed, bool aligned,
                     const LoadDataOptions& opt) {
  TaskBatch t;
  t.dataset = load_task(task, tok, n, seed, opt);
  BatchOptions bo;
  bo.require_aligned = aligned;
  t.batch = make_batch(t.dataset, tok, bo);
  return t;
}

}  // namespace edgewise
