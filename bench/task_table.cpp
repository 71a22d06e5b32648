// The clean metrics of every built-in task on one model (docs/TASKS.md's table): for each task,
// n seeded examples, one forward over the clean prompts and one over the corrupted prompts, and
// the mean logit difference, probability difference and accuracy at the prediction positions.
// Prints a Markdown table. A report, not a test: nothing here asserts the model does the task.
//   task_table [MODEL] [N=200] [SEED=0] [DUMP_DIR]
// With DUMP_DIR, each task's examples are also written to DUMP_DIR/<task>.jsonl (the explicit
// answer format of load_jsonl), so bench/task_table_check.py can recompute the figures with
// transformers.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/tasks.h"

using namespace edgewise;

namespace {

// Logits at the prediction positions [N, V] for right-padded tokens [N, T], in chunks.
at::Tensor last_logits(const Model& m, const at::Tensor& tokens, const at::Tensor& pos) {
  std::vector<at::Tensor> out;
  const int64_t chunk = 50;
  for (int64_t s = 0; s < tokens.size(0); s += chunk) {
    const int64_t e = std::min(tokens.size(0), s + chunk);
    out.push_back(logits_at(m.forward(tokens.slice(0, s, e)), pos.slice(0, s, e)));
  }
  return at::cat(out);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "";
  TaskOptions opt;
  opt.n = argc > 2 ? std::stoll(argv[2]) : 200;
  opt.seed = argc > 3 ? std::stoull(argv[3]) : 0;
  const std::string dump = argc > 4 ? argv[4] : "";
  try {
    at::NoGradGuard ng;
    Model m = Model::load(spec);
    const Tokenizer& tok = m.tokenizer();
    std::printf("model: %s (%s), %lld examples per task, seed %llu\n\n", m.source().gguf.empty() ? m.source().dir.c_str() : m.source().gguf.c_str(),
                m.source().origin.c_str(), (long long)opt.n, (unsigned long long)opt.seed);
    std::printf("| task | logit diff (clean) | prob diff (clean) | accuracy (clean) | logit diff (corrupted) | prob diff (corrupted) | answers |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---|\n");
    std::vector<std::string> notes;
    for (const auto& name : task_names()) {
      Dataset ds = make_task(name, tok, opt);
      Batch b = make_batch(ds, tok);
      if (!dump.empty()) {
        std::ofstream f(dump + "/" + name + ".jsonl");
        for (const auto& ex : ds.examples)
          f << nlohmann::json{{"clean", ex.clean}, {"corrupted", ex.corrupted}, {"correct", ex.correct},
                              {"incorrect", ex.incorrect}}.dump() << "\n";
      }
      at::Tensor lc = last_logits(m, b.clean, b.clean_pos);
      at::Tensor lk = last_logits(m, b.corrupted, b.corrupted_pos);
      const double ld = metric_mean(Metric::LogitDiff, lc, b).item<double>();
      const double pd = metric_mean(Metric::ProbDiff, lc, b).item<double>();
      const double acc = metric_mean(Metric::Accuracy, lc, b).item<double>();
      const double ldk = metric_mean(Metric::LogitDiff, lk, b).item<double>();
      const double pdk = metric_mean(Metric::ProbDiff, lk, b).item<double>();
      const int64_t A = b.correct_mask.sum(1).mean().item<double>() + b.incorrect_mask.sum(1).mean().item<double>();
      std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %lld per example%s |\n", name.c_str(), ld, pd, acc, ldk, pdk,
                  (long long)A, b.aligned ? "" : ", not aligned");
      notes.push_back(name + ": " + ds.description);
    }
    std::printf("\n");
    for (const auto& n : notes) std::printf("- %s\n", n.c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
