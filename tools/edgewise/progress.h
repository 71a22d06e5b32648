// Progress lines on stderr for long work: what, how far, elapsed and time left. Rewrites one
// line on a terminal; prints a line per update (at most every few seconds) otherwise.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "edgewise/run.h"

namespace edgewise::cli {

class Progress {
 public:
  Progress(std::string what, int64_t total)
      : what_(std::move(what)), total_(total), t0_(clock::now()), tty_(isatty(2)) {}

  void update(int64_t done, const std::string& extra = "") {
    const double el = seconds();
    if (!tty_ && done < total_ && el - last_ < 5.0) return;
    last_ = el;
    const double eta = done > 0 ? el * (total_ - done) / done : 0.0;
    std::fprintf(stderr, "%s%s: %lld/%lld, %.1f s elapsed, ~%.0f s left%s%s", tty_ ? "\r" : "", what_.c_str(),
                 (long long)done, (long long)total_, el, eta, extra.empty() ? "" : ", ", extra.c_str());
    std::fprintf(stderr, tty_ ? "\033[K" : "\n");
    if (tty_ && done >= total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }
  void set_total(int64_t total) { total_ = total; }

 private:
  using clock = std::chrono::steady_clock;
  std::string what_;
  int64_t total_;
  clock::time_point t0_;
  bool tty_;
  double last_ = -1e9;
};

/// The library's progress events (run.h) as lines "<what> <stage>: done/total, ..., name value, ...".
/// One line per stage; figures print with 4 significant digits.
inline ProgressFn progress_printer(const std::string& what) {
  struct State {
    std::string stage;
    std::unique_ptr<Progress> line;
  };
  auto st = std::make_shared<State>();
  return [st, what](const ProgressEvent& e) {
    if (!st->line || st->stage != e.stage) {
      st->stage = e.stage;
      st->line = std::make_unique<Progress>(what + (e.stage.empty() ? "" : " " + e.stage), e.total);
    }
    st->line->set_total(e.total);
    std::string extra;
    char b[96];
    for (const auto& [name, v] : e.figures) {
      std::snprintf(b, sizeof b, "%s%s %.4g", extra.empty() ? "" : ", ", name.c_str(), v);
      extra += b;
    }
    st->line->update(e.done, extra);
  };
}

}  // namespace edgewise::cli
