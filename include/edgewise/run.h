// Run control: what every long method takes in one shape — where and how often it checkpoints,
// whether it resumes, what identifies the run, a stop flag, and one progress callback — so a
// caller (the command line, the Python package, a distributed driver) wires these once for ACDC,
// Edge Pruning, path patching and circuit-tuning alike. Attribution, FLAP and circuit
// evaluation, which cannot resume, report progress in the same shape (ProgressFn).
//
//   RunControl run;
//   run.checkpoint = "acdc.ck.json";  run.checkpoint_seconds = 300;  run.resume = true;
//   run.stop = [&] { return interrupted.load(); };     // polled between units of work
//   run.progress = [](const ProgressEvent& e) { ... e.stage, e.done, e.total, e.figures ... };
//
// A unit of work is the method's natural step: a reader (ACDC), an optimiser step (Edge Pruning,
// circuit-tuning), a receiver head (path patching). A checkpoint is written at a unit boundary
// when `checkpoint_seconds` have passed since the last one (0: after every unit), when `stop`
// ends the run, and at the end. Torch-free and header-only.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "edgewise/error.h"

namespace edgewise {

/// One progress report: how far a stage has come, with the method's running figures by name.
struct ProgressEvent {
  std::string stage;  ///< what is counted: "readers", "steps", "receivers", "eap-ig-inputs", ...
  int64_t done = 0;
  int64_t total = 0;  ///< 0 when unknown (path patching's queue grows as it runs)
  /// Running figures, in a fixed order per method: ("edges kept", 812), ("kl", 0.031), ...
  std::vector<std::pair<std::string, double>> figures;
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

struct RunControl {
  std::string checkpoint;           ///< file the method checkpoints to; empty: none
  double checkpoint_seconds = 60;   ///< at most this often, at unit boundaries (0: after every unit)
  bool resume = false;              ///< continue from `checkpoint` when it exists
  /// Identifies the run (model, data, ...); a checkpoint written under another is refused.
  std::string fingerprint;
  /// Polled between units of work: true writes the checkpoint and returns the partial result
  /// (its `complete` false), as if the process had been killed after the last checkpoint.
  std::function<bool()> stop;
  ProgressFn progress;  ///< after units of work; may be empty

  bool stopping() const { return stop && stop(); }
  void report(const ProgressEvent& e) const {
    if (progress) progress(e);
  }
};

/// When a checkpoint is due: `checkpoint_seconds` after the last one.
class CheckpointClock {
 public:
  explicit CheckpointClock(const RunControl& run) : run_(run), last_(Clock::now()) {}
  /// True when the run checkpoints and its interval has passed since the last save.
  bool due() const {
    return !run_.checkpoint.empty() &&
           std::chrono::duration<double>(Clock::now() - last_).count() >= run_.checkpoint_seconds;
  }
  void saved() { last_ = Clock::now(); }

 private:
  using Clock = std::chrono::steady_clock;
  const RunControl& run_;
  Clock::time_point last_;
};

/// Checks the interval; Error naming `where` for a negative or non-finite one.
inline void check_run_control(const RunControl& run, const std::string& where) {
  if (!(run.checkpoint_seconds >= 0) || run.checkpoint_seconds > 1e300)
    fail(where, "the checkpoint interval must be a number of seconds >= 0");
  if (run.resume && run.checkpoint.empty()) fail(where, "resume needs a checkpoint file");
}

}  // namespace edgewise
