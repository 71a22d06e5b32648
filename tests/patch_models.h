// What the tests on tests/reference/patch_golden.py's small random models share: loading them
// (GPT-2 "gpt2", grouped-query Llama "llama"), skipping when the fixture has not run, and seeded
// random prompts.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "edgewise/model.h"
#include "edgewise/tasks.h"
#include "test_helpers.h"

namespace ewtest {

inline std::string patch_gold(const std::string& f) { return golden("patch_golden", f); }
inline bool have_patch_golden() { return exists(patch_gold("llama_edges.json")); }
#define REQUIRE_GOLDEN() \
  if (!ewtest::have_patch_golden()) GTEST_SKIP() << "golden files absent: run ctest (fixture patch_golden)"

inline edgewise::Model load_patch_model(const std::string& name) {
  edgewise::LoadOptions o;
  o.load_tokenizer = false;
  return edgewise::Model::load(edgewise::resolve_model(patch_gold(name)), o);
}

/// Seeded random prompts: B rows of T tokens, corrupted differing everywhere; answers for the
/// metrics that need them.
inline edgewise::Batch random_prompts(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  at::manual_seed(seed);
  edgewise::Batch b;
  b.clean = at::randint(1, vocab, {B, T}, at::kLong);
  b.corrupted = (b.clean + at::randint(1, vocab - 1, {B, T}, at::kLong)) % vocab;
  b.clean_len = at::full({B}, T, at::kLong);
  b.corrupted_len = b.clean_len.clone();
  b.clean_pos = at::full({B}, T - 1, at::kLong);
  b.corrupted_pos = b.clean_pos.clone();
  b.correct = at::randint(0, vocab, {B, 1}, at::kLong);
  b.incorrect = (b.correct + 1) % vocab;
  b.correct_mask = at::ones({B, 1});
  b.incorrect_mask = at::ones({B, 1});
  b.aligned = true;
  b.lines.assign(B, 0);
  return b;
}

}  // namespace ewtest
