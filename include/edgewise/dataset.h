// User data as text: examples (clean prompt, corrupted prompt, answers), the JSONL and CSV
// readers, and the answer checks a tokenizer makes possible. Torch-free (in edgewise_core), so the
// readers can be fuzzed without libtorch; tokenized batches are in edgewise/tasks.h.
//
// A file is read whole and every bad line is reported at once (file:line and why), or, with
// LoadDataOptions::skip_bad, skipped and counted. See docs/TASKS.md for the formats.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgewise {

class Tokenizer;

/// One example. Answers are continuations of the prompt, usually with a leading space (" Mary").
struct Example {
  std::string clean;                   ///< clean prompt (the answer is the next token)
  std::string corrupted;               ///< corrupted prompt (the ablation source for resample)
  std::vector<std::string> correct;    ///< correct answers (at least one)
  std::vector<std::string> incorrect;  ///< incorrect answers (may be empty)
  /// Explicit answer token ids (EAP-IG CSV `correct_idx` / `incorrect_idx`); when non-empty they
  /// are used instead of tokenizing `correct` / `incorrect`.
  std::vector<int32_t> correct_ids, incorrect_ids;
  std::string split;  ///< "", "train" or "validation"
  int64_t line = 0;   ///< 1-based line in the source file (0 for generated examples)
  /// Token index of the prediction (BOS included) when it is not the last prompt token: the
  /// Tracr tasks read an output at every position, one example per position. -1: the last.
  int64_t position = -1;
};

/// A named list of examples.
struct Dataset {
  std::string name;         ///< task name ("ioi") or the file path
  std::string description;  ///< one line: source, seed, variant
  std::vector<Example> examples;
  int64_t skipped = 0;                 ///< bad lines or examples skipped (LoadDataOptions::skip_bad)
  std::vector<std::string> skip_notes; ///< the reason for each skipped one ("file:12: ...")
  /// What a run should show but need not stop for, one line each (multi-token answers).
  std::vector<std::string> warnings;
  /// The task's own defaults where they differ from the library's (the Tracr tasks: zero
  /// ablation, KL or MSE); empty: the caller's. Callers apply them when the user chose none.
  std::string default_metric, default_ablation;

  /// The examples whose split equals `which` ("train" / "validation"); examples without a split
  /// belong to every split.
  Dataset select_split(const std::string& which) const;
  /// The first n examples (all when n >= size).
  Dataset head(int64_t n) const;
  /// Where example i came from: "file.jsonl:12", or "task ioi, example 3" for generated ones.
  std::string where(size_t i) const;
};

struct LoadDataOptions {
  /// Skip bad lines (counted in Dataset::skipped, reasons in skip_notes) instead of failing.
  bool skip_bad = false;
};

/// Loads by extension: .jsonl / .json (one object a line) or .csv. A folder, a missing file and
/// an unknown extension are errors naming the path.
Dataset load_dataset(const std::string& path, const LoadDataOptions& opt = {});
/// JSONL: {"clean": "... to <predict>Mary</predict>", "corrupted": "...", "split": "train"}
/// or explicit {"clean", "corrupted", "correct": str|[str], "incorrect": str|[str]}.
Dataset load_jsonl(const std::string& path, const LoadDataOptions& opt = {});
/// CSV with a header: clean, corrupted and the answers as text (correct / incorrect, or label
/// for the correct one) or as token ids (correct_idx / incorrect_idx, EAP-IG). Optional split.
Dataset load_csv(const std::string& path, const LoadDataOptions& opt = {});
/// The readers on text in memory (`path` names it in messages); what load_jsonl / load_csv call.
Dataset parse_jsonl(const std::string& path, const std::string& text, const LoadDataOptions& opt = {});
Dataset parse_csv(const std::string& path, const std::string& text, const LoadDataOptions& opt = {});

/// The answer checks that need the tokenizer, on every example: an answer with no tokens or an
/// id outside the tokenizer's vocabulary; an answer whose first token is only spaces while the
/// answer goes on (the metrics would score the space: "is <predict> Paris</predict>"); correct
/// and incorrect answers with the same first token (the metrics compare first tokens). Every bad
/// example is reported in one Error or, with skip_bad, removed and counted. Multi-token answers
/// are allowed and noted in `warnings` (how many, the first few places, what the metrics use).
void check_answers(Dataset& ds, const Tokenizer& tok, const LoadDataOptions& opt = {});
/// load_dataset and check_answers in one, with the bad lines of both in one report (sorted by
/// line), then the first n good examples (all when n < 0); `warnings` are about those n.
Dataset load_dataset_checked(const std::string& path, const Tokenizer& tok, int64_t n,
                             const LoadDataOptions& opt = {});

}  // namespace edgewise
