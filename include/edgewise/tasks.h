// Tasks and data: a dataset is a list of (clean prompt, corrupted prompt, correct answers,
// incorrect answers). Built-in seeded generators (IOI, Greater-Than, Induction, Gendered
// Pronouns, Docstring) adapt to the loaded tokenizer; user data comes from JSONL (Edge Pruning's
// `<predict>` markup, or explicit answer lists) or CSV (EAP-IG / MIB columns). A dataset is
// tokenized into a Batch for one model: right-padded token tensors, prediction positions and
// answer token ids. See docs/TASKS.md.
//
// Not here: the metrics (edgewise/metrics.h), the patched forward, any file output.
// Dimension letters: N examples, T tokens, A answers per example.
//
// This header deliberately includes only ATen's Tensor type, not torch/torch.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "edgewise/dataset.h"
#include "edgewise/tokenizer.h"

namespace edgewise {

// ---- built-in generators ----

/// Options shared by the generators.
struct TaskOptions {
  int64_t n = 200;     ///< number of examples
  uint64_t seed = 0;   ///< std::mt19937_64 seed: the same seed gives the same data
};

/// Names of the built-in language tasks: "ioi", "greater-than", "induction", "gendered-pronouns",
/// "docstring", "sva" (they adapt to a language model's tokenizer).
const std::vector<std::string>& task_names();
/// Names of the built-in Tracr tasks, "tracr-reverse" and "tracr-xproportion": they run on the
/// models tools/tracr/export.py compiles (tests/data/tracr/), whose vocabularies they need.
const std::vector<std::string>& tracr_task_names();
/// Whether `name` is a built-in task of either kind.
bool is_builtin_task(const std::string& name);
/// A built-in task's own defaults (Dataset::default_metric / default_ablation); empty for the
/// others and for files.
struct TaskDefaults {
  std::string metric, ablation;
};
TaskDefaults task_defaults(const std::string& name);
/// Generates a built-in task by name. Unknown name -> Error listing the known ones.
Dataset make_task(const std::string& name, const Tokenizer& tok, const TaskOptions& opt = {});

/// Indirect object identification (Wang et al. 2022): BABA and ABBA templates, ABC corruption.
Dataset make_ioi(const Tokenizer& tok, const TaskOptions& opt = {});
/// Greater-Than (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17";
/// corrupted start year XX01. Two-digit answers when the tokenizer has them as single tokens,
/// otherwise (digit-splitting tokenizers) the tens digit of the end year; see docs/TASKS.md.
Dataset make_greater_than(const Tokenizer& tok, const TaskOptions& opt = {});
/// Induction: a random token sequence repeated; predict the next repeated token.
Dataset make_induction(const Tokenizer& tok, const TaskOptions& opt = {});
/// Gendered pronouns (Mathwin et al.): "So John is a really great friend, isn't" -> " he".
Dataset make_gendered_pronouns(const Tokenizer& tok, const TaskOptions& opt = {});
/// Docstring (Heimersheim & Janiak 2023): predict the next :param name; random_random corruption.
Dataset make_docstring(const Tokenizer& tok, const TaskOptions& opt = {});
/// Tracr's `reverse` (tracr's make_reverse; ACDC's and Edge Pruning's tracr-reverse): every
/// sequence of 4 tokens over {1, 2, 3} after BOS (shorter than the compiled 5, so that the length
/// computation matters), one example per output position 1..4 (the correct answer: the token at
/// the mirrored position; incorrect: the other two outputs), in a seeded order, the first opt.n
/// examples (at most 3^4 * 4 = 324). Corrupted: another sequence. Defaults: zero ablation, MSE
/// (ACDC's). Needs the model's vocabulary (Tokenizer::from_tracr_config).
Dataset make_tracr_reverse(const Tokenizer& tok, const TaskOptions& opt = {});
/// Tracr's `xproportion` (make_frac_prevs of tokens == "x"): every sequence of 4 tokens over
/// {w, x, y, z}, one example per position 1..4 whose output is the fraction of x among the tokens
/// up to it; at most 4^4 * 4 = 1024 examples. Defaults: zero ablation, MSE (numerical output).
Dataset make_tracr_xproportion(const Tokenizer& tok, const TaskOptions& opt = {});
/// Subject-verb agreement: "The key near the cabinets" -> " is" (and the other singular verb
/// forms) over " are"; corrupted = the subject's number flipped ("The keys near the cabinets").
Dataset make_sva(const Tokenizer& tok, const TaskOptions& opt = {});

/// The single token of `text` as a continuation of other text (Tokenizer::encode_continuation:
/// no SentencePiece dummy prefix), or -1 when it encodes to zero or several tokens.
int32_t single_token(const Tokenizer& tok, const std::string& text);

// ---- tokenized batches ----

struct BatchOptions {
  /// Fail unless clean and corrupted prompts have equal token counts (methods that patch
  /// position by position need it). The error names the first offending example.
  bool require_aligned = false;
  /// Token used for right padding; -1 = the tokenizer's EOS id, else 0.
  int64_t pad_id = -1;
};

/// A dataset tokenized for one model. Answer token rule: the first token of encode(answer)
/// (no BOS); `multi_token_answers` counts answers that had more than one token.
struct Batch {
  at::Tensor clean, corrupted;          ///< [N, T] int64, right-padded with pad_id (BOS first if add_bos)
  at::Tensor clean_len, corrupted_len;  ///< [N] int64 token counts
  at::Tensor clean_pos, corrupted_pos;  ///< [N] int64 prediction position (last prompt token, or Example::position)
  at::Tensor correct, incorrect;        ///< [N, A] int64 answer token ids, padded with 0
  at::Tensor correct_mask, incorrect_mask;  ///< [N, A] float: 1 for a real answer, 0 for padding
  bool aligned = false;                 ///< every clean/corrupted pair has equal token counts
  int64_t pad_id = 0;
  int64_t multi_token_answers = 0;
  std::vector<int64_t> lines;           ///< source line per example (0 if generated)
  int64_t size() const { return clean.defined() ? clean.size(0) : 0; }
  /// Examples [from, to): every per-example tensor and line (columns unchanged).
  Batch rows(int64_t from, int64_t to) const;
  /// The examples at `index` ([n] int64, any order, repeats allowed), in that order.
  Batch select(const at::Tensor& index) const;
};

/// Tokenizes a dataset. Errors name the dataset and the example (index and source line).
Batch make_batch(const Dataset& ds, const Tokenizer& tok, const BatchOptions& opt = {});

// ---- what a run reads: a task by name or file, its split, its batch ----

/// A built-in task by name (n examples, seeded) or the first n good examples of a dataset file,
/// after check_answers (the whole file is checked, so every bad line is reported in one run). A
/// built-in task's name wins over a file or folder of that name in the working directory
/// ("./name" reads such a file); a name with a '.' or '/' is a file. `opt.skip_bad` skips bad
/// lines and examples (counted in the result) instead of failing.
Dataset load_task(const std::string& task, const Tokenizer& tok, int64_t n, uint64_t seed,
                  const LoadDataOptions& opt = {});
/// Train / validation examples: a dataset file's `split` fields when any example has one,
/// otherwise the last round(fraction N) examples (at least min_validation, at most N - 1; built-in
/// tasks are seeded i.i.d. draws, so this is a seeded split). Fails when no training example is left.
struct TrainValidation {
  Dataset train, validation;
  bool from_file = false;  ///< the file's split fields were used
};
TrainValidation split_train_validation(const Dataset& ds, double fraction, int64_t min_validation);
/// load_task tokenized with `tok`; `aligned` requires clean and corrupted prompts of equal token
/// counts (what an ablation that patches position by position needs: patch.h's
/// ablation_needs_alignment). Returns the dataset (its name, split fields, text) with the batch.
struct TaskBatch {
  Dataset dataset;
  Batch batch;
};
TaskBatch task_batch(const Tokenizer& tok, const std::string& task, int64_t n, uint64_t seed, bool aligned,
                     const LoadDataOptions& opt = {});

}  // namespace edgewise
