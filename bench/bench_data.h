// The prompts a benchmark runs on: a built-in task on the model's tokenizer, or token ids in
// bench/autocircuit_bench.py's prompts.json format ({"clean", "corrupted": [[ids]], "correct",
// "incorrect": [id]}, every prompt of one length: the peers' runs use the same file).
#pragma once
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/tasks.h"

namespace bench {

inline bool is_ids_file(const std::string& task) {
  return task.size() > 5 && task.substr(task.size() - 5) == ".json";
}

/// The first N prompts of `task` (a task name or an ids file), clean/corrupted aligned.
inline edgewise::Batch load_prompts(const edgewise::Model& m, const std::string& task, int64_t N) {
  edgewise::Batch b;
  if (!is_ids_file(task)) {
    edgewise::TaskOptions to;
    to.n = N;
    to.seed = 0;
    edgewise::BatchOptions bo;
    bo.require_aligned = true;
    return edgewise::make_batch(edgewise::make_task(task, m.tokenizer(), to), m.tokenizer(), bo);
  }
  nlohmann::json d = nlohmann::json::parse(std::ifstream(task));
  auto ids = [](const nlohmann::json& j) {
    auto v = j.get<std::vector<std::vector<int64_t>>>();
    at::Tensor t = at::empty({(int64_t)v.size(), (int64_t)v[0].size()}, at::kLong);
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t k = 0; k < v[i].size(); ++k) t[i][k] = v[i][k];
    return t;
  };
  b.clean = ids(d.at("clean")).narrow(0, 0, N);
  b.corrupted = ids(d.at("corrupted")).narrow(0, 0, N);
  const int64_t T = b.clean.size(1);
  b.clean_len = b.corrupted_len = at::full({N}, T, at::kLong);
  b.clean_pos = b.corrupted_pos = at::full({N}, T - 1, at::kLong);
  b.correct = at::tensor(d.at("correct").get<std::vector<int64_t>>()).narrow(0, 0, N).view({N, 1});
  b.incorrect = at::tensor(d.at("incorrect").get<std::vector<int64_t>>()).narrow(0, 0, N).view({N, 1});
  b.correct_mask = b.incorrect_mask = at::ones({N, 1});
  b.aligned = true;
  b.lines.assign(N, 0);
  return b;
}

/// A benchmark's model (from a path, or the default; no tokenizer needed for an ids file), its
/// split q/k/v graph and the first N prompts of `task`.
struct Loaded {
  edgewise::Model model;
  edgewise::Graph graph;
  edgewise::Batch batch;
};
inline Loaded load(const std::string& spec, const std::string& task, int64_t N) {
  edgewise::LoadOptions lo;
  lo.load_tokenizer = !is_ids_file(task);
  // BENCH_DTYPE=bf16: the weights in bf16 (a bf16 safetensors checkpoint then stays mapped).
  if (const char* d = std::getenv("BENCH_DTYPE"); d && std::string(d) == "bf16") lo.dtype = edgewise::DType::BF16;
  edgewise::Model m = edgewise::Model::load(spec, lo);
  edgewise::Graph g = edgewise::model_graph(m, true);
  edgewise::Batch b = load_prompts(m, task, N);
  return {std::move(m), std::move(g), std::move(b)};
}

}  // namespace bench
